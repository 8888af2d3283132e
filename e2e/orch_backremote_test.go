package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/testenv"
)

// backShop is db and web on two hosts (anti-affinity), each protected by
// a real `haven agent` on the primary whose stop and start hooks do
// nothing: the primaries are their disk files.
const backShop = `sites: {primary: onprem, recovery: cloud}
networks:
  primary: [{name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}]
  recovery: [{name: rec, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
  test: [{name: drill, subnet: 10.2.0.0/24, gateway: 10.2.0.1}]
mapping: {recovery: {prod: rec}, test: {prod: drill}}
agents:
  - {name: prim, url: "http://127.0.0.1:%d", token_file: %s, timeout: 10s}
machines:
  - {name: db, agent: prim, cpus: 2, anti_affinity: shop, disks: [{name: root}], health: {tcp_port: 80}, health_timeout: 2m,
     nics: [{name: eth0, network: prod, address: 10.1.0.10/24, recovery: static, static: 10.2.0.10}]}
  - {name: web, agent: prim, cpus: 2, anti_affinity: shop, disks: [{name: root}], health: {http_port: 80, http_path: /}, health_timeout: 2m,
     nics: [{name: eth0, network: prod, address: 10.1.0.20/24, recovery: static, static: 10.2.0.20}]}
plans:
  - name: shop
    groups:
      - {name: database, machines: [db]}
      - {name: web, machines: [web]}
`

// TestHostsReprotectFailback: the real server (in process) drives three
// `haven host` processes in namespaces of their own (newHostRig); shop's
// machines run on two of them after a planned failover. Reprotect has
// each host replicate back the machine it runs, with its own vault
// access, reading the disks where they are, and goes on after the host
// restarts; a marker written into each
// recovered disk on its host then reaches the primary's disk through the
// failback's final pass, whose point IDs are the ones the primary's
// agent restored. Afterwards no host holds the plan's replication, its
// disks or any site namespace or link.
func TestHostsReprotectFailback(t *testing.T) {
	r := newHostRig(t)
	ctx := context.Background()
	dir := testenv.Dir(t)
	agentPort, agentTok := freePort(t), filepath.Join(dir, "agent.token")
	hostsMust(t, os.WriteFile(agentTok, []byte("agent-token-"+strings.Repeat("y", 24)+"\n"), 0o600))
	prim := map[string]string{}
	for _, m := range []string{"db", "web"} {
		img, err := os.ReadFile(machinetest.Image(t))
		hostsMust(t, err)
		prim[m] = filepath.Join(dir, "prim-"+m+".img")
		hostsMust(t, os.WriteFile(prim[m], img, 0o600))
	}
	startPrimaryAgent(t, r, dir, agentPort, agentTok, prim)

	c := rigServer(t, r, false, false)
	res, err := c.Apply(ctx, []byte(fmt.Sprintf(backShop, agentPort, agentTok)))
	hostsMust(t, err)
	on := map[string]*recoveryHost{}
	for _, m := range []string{"db", "web"} {
		i := slices.IndexFunc(r.Hosts, func(h *recoveryHost) bool { return h.Name == res.Placement[m] })
		if i < 0 || slices.Contains(slices.Collect(maps.Values(on)), r.Hosts[i]) {
			t.Fatalf("placement %v: want db and web on two hosts", res.Placement)
		}
		on[m] = r.Hosts[i]
	}

	fo := runJob(t, c, "shop", orchestrator.PlannedFailover)
	runJob(t, c, "shop", orchestrator.Commit)
	before := pointCounts(t, r)
	runJob(t, c, "shop", orchestrator.Reprotect)
	after := pointCounts(t, r)
	for _, m := range []string{"db", "web"} {
		// The primaries are fenced (their agent stopped them): every new
		// point is replication back.
		if after[m] <= before[m] {
			t.Fatalf("%s: %d points before reprotect, %d after: the host wrote none", m, before[m], after[m])
		}
		if _, err := os.Stat(filepath.Join(on[m].Dir, "replication", "shop.json")); err != nil {
			t.Fatalf("host %s keeps no order to replicate back shop: %v", on[m].Name, err)
		}
	}

	// db's host restarts: it takes up replication back from its own
	// state, unasked (the server does not know it restarted).
	on["db"].Stop()
	r.Start(t, on["db"])
	testenv.Eventually(t, time.Minute, "a point of db from its restarted host", func() bool {
		return pointCounts(t, r)["db"] > after["db"]
	})

	marks := map[string][]byte{}
	const at = 1 << 20 // inside the image, in blocks its filesystem does not use
	for _, m := range []string{"db", "web"} {
		marks[m] = make([]byte, 16)
		rand.Read(marks[m])
		f, err := os.OpenFile(filepath.Join(on[m].Dir, "disks", fo.ID, m, "root.img"), os.O_WRONLY, 0)
		hostsMust(t, err)
		_, err = f.WriteAt(marks[m], imageSize(t)-at)
		hostsMust(t, errors.Join(err, f.Close()))
	}
	fb := runJob(t, c, "shop", orchestrator.Failback)
	out := outputsOfAPI(t, fb)
	for _, m := range []string{"db", "web"} {
		got := make([]byte, 16)
		f, err := os.Open(prim[m])
		hostsMust(t, err)
		_, err = f.ReadAt(got, imageSize(t)-at)
		hostsMust(t, errors.Join(err, f.Close()))
		if !bytes.Equal(got, marks[m]) {
			t.Errorf("%s: the primary's disk lacks the byte written on host %s", m, on[m].Name)
		}
		if p, ok := out.Points[m]; !ok || out.Failback[m+"/root"] == nil || out.Failback[m+"/root"].BytesWritten <= 0 {
			t.Errorf("%s: failback point %+v, restore %+v", m, p, out.Failback[m+"/root"])
		}
	}
	var left []string
	gone := func() bool {
		nss, links, _ := r.Leftovers()
		left = append(nss, links...)
		for _, h := range on {
			for _, p := range []string{filepath.Join(h.Dir, "replication", "shop.json"), filepath.Join(h.Dir, "replication", "shop"),
				filepath.Join(h.Dir, "replication-clones", "shop"), filepath.Join(h.Dir, "disks", fo.ID, "db", "root.img"), filepath.Join(h.Dir, "disks", fo.ID, "web", "root.img")} {
				if _, err := os.Stat(p); err == nil {
					left = append(left, p)
				}
			}
		}
		return len(left) == 0
	}
	for deadline := time.Now().Add(30 * time.Second); !gone() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Fatalf("left after the failback: %v", left)
	}
}

func imageSize(t *testing.T) int64 {
	fi, err := os.Stat(machinetest.Image(t))
	hostsMust(t, err)
	return fi.Size()
}

// pointCounts counts each machine's points in the rig's vault.
func pointCounts(t *testing.T, r *hostRig) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range []string{"db", "web"} {
		var ps []json.RawMessage
		hostsMust(t, json.Unmarshal([]byte(mustHaven(t, nil, append([]string{"vault", "points", "--json", "--machine", m}, r.vault...)...)), &ps))
		out[m] = len(ps)
	}
	return out
}

// startPrimaryAgent runs `haven agent` for the primaries' disk files on
// loopback, its control hooks doing nothing (no machine runs there).
func startPrimaryAgent(t *testing.T, r *hostRig, dir string, port int, tok string, disks map[string]string) {
	var b strings.Builder
	fmt.Fprintf(&b, "vault: file://%s\npassword_file: %s\nstate_dir: %s\nlisten: 127.0.0.1:%d\ncontrol_token_file: %s\nmachines:\n",
		filepath.Join(r.base, "vault"), filepath.Join(r.base, "vault.pw"), filepath.Join(dir, "agent-state"), port, tok)
	for _, m := range slices.Sorted(maps.Keys(disks)) {
		fmt.Fprintf(&b, "  - {name: %s, provider: none, disks: [{name: root, path: %s}], policy: {frequency: 15s, rpo_alert: 1m},\n     control: {stop: \"true\", start: \"true\", timeout: 10s}}\n", m, disks[m])
	}
	path := filepath.Join(dir, "agent.yaml")
	hostsMust(t, os.WriteFile(path, []byte(b.String()), 0o600))
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	hostsMust(t, err)
	cmd := exec.Command(havenBin, "agent", "run", "--config", path)
	cmd.Env, cmd.Stdout, cmd.Stderr = baseEnv(), logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	hostsMust(t, cmd.Start())
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("agent log:\n%s", b)
		}
	})
}
