package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/host/hostapi"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestHAServersApartShareHosts: two `haven server`s, each on a "machine"
// of its own (network namespace, address, state directory), on one
// PostgreSQL in a third, share three recovery hosts run as real `haven
// host` processes (newHostRig). The leader is SIGKILLed in the middle of
// an unplanned failover (db started, web not yet); the follower takes
// the lease with a higher epoch, resumes the job and finishes it on the
// hosts apply chose: db still the one machine process it was, web
// started once. The killed leader's orders (its epoch) are then refused
// by the hosts and change nothing; a cancel removes what it made.
func TestHAServersApartShareHosts(t *testing.T) {
	r := newHostRig(t)
	ctx := context.Background()
	dir := testenv.Dir(t)
	s := newBareSite(t, dir)
	pfx := netip.MustParsePrefix
	pg := testenv.StartPostgresIn(t, r.MachineNS(t, "pg", pfx("10.77.0.30/24")), "10.77.0.30", "fsync=off")
	if _, err := pg.Query(ctx, "CREATE DATABASE hvha"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"db", "web"} {
		mustHaven(t, nil, append([]string{"snapshot", "--machine", m, "--disk", "root=" + machinetest.Image(t)}, r.vault...)...)
	}
	a := &haMachines{db: pg.URL("hvha"), token: filepath.Join(dir, "admin.token"),
		dial: func(ctx context.Context, n, addr string) (net.Conn, error) {
			return vnet.DialContext(ctx, r.Ctl, n, addr)
		}}
	var hosts strings.Builder
	for _, h := range r.Hosts {
		fmt.Fprintf(&hosts, "  - {name: %s, url: \"https://%s:7443\", token_file: %s/token, ca_file: %s/tls/ca.crt, cpus: 4}\n", h.Name, h.Addr, h.Dir, h.Dir)
	}
	// The same tokens on both machines (copied there in a deployment);
	// plain HTTP between the servers on their private link.
	a.extra = fmt.Sprintf("vault: %s\npassword_file: %s\nstandby: false\ntls: {mode: off}\ntoken_file: %s\nviewer_token_file: %s/viewer.token\nhosts:\n%s",
		r.vault[1], r.vault[3], a.token, dir, hosts.String())
	for i := range 2 {
		a.ns[i] = r.MachineNS(t, fmt.Sprintf("s%d", i), pfx(fmt.Sprintf("10.77.0.%d/24", 11+i)))
		a.addr[i], a.state[i] = fmt.Sprintf("10.77.0.%d", 11+i), filepath.Join(dir, fmt.Sprintf("server%d", i))
	}
	p := &haPair{s: s, db: pg.TCPURL("hvha"), ports: [2]int{7780, 7780}, apart: a}
	p.start(0)
	p.eventuallyLeader(0, time.Minute)
	p.start(1)

	runs := filepath.Join(dir, "script-runs")
	doc := strings.Replace(hostsShop, "{name: web, machines: [web]}", fmt.Sprintf(
		`{name: web, machines: [web], before: [{type: script, run: "echo run >> %s; sleep 3", types: [unplanned], timeout: 1m}]}`, runs), 1)
	res, err := p.clients[1].Apply(ctx, []byte(doc)) // through the follower
	if err != nil {
		t.Fatal(err)
	}
	place := res.Placement
	if place["db"] == "" || place["web"] == "" || place["db"] == place["web"] {
		t.Fatalf("db and web (2 CPUs each) on hosts of 4: want two hosts, got %v", place)
	}
	_, epoch, err := p.leader()
	if err != nil {
		t.Fatal(err)
	}
	j, err := p.clients[1].Submit(ctx, "shop", string(orchestrator.UnplannedFailover), api.Params{})
	if err != nil {
		t.Fatal(err)
	}
	// Cut between the groups: db runs, web's script has begun.
	s.eventually(3*time.Minute, "the leader runs web's script", func() error {
		if n := lines(runs); n != 1 {
			return fmt.Errorf("%d runs", n)
		}
		return nil
	})
	before := hostRunners(r)
	if len(before) != 1 || len(before["db"]) != 1 || !strings.HasPrefix(before["db"][0], place["db"]+"/") {
		t.Fatalf("machines when the leader is killed: %v, want db alone on %s", before, place["db"])
	}
	s.kill("ha0", syscall.SIGKILL)
	if e := p.eventuallyLeader(1, 4*haLease); e <= epoch {
		t.Fatalf("epoch %d after takeover, was %d", e, epoch)
	}
	end, err := p.clients[1].Watch(ctx, j.ID, nil)
	if err != nil || end.State != api.JobSucceeded {
		t.Fatalf("job after takeover: %+v %v\n%s", end, err, s.log("ha1"))
	}
	for _, st := range end.Steps {
		if st.Tries > 2 {
			t.Fatalf("step %q ran %d times", st.Name, st.Tries)
		}
	}
	if n := lines(runs); n != 2 {
		t.Fatalf("web's script ran %d times, want 2 (cut on the killed leader, again on the new one)", n)
	}
	after := hostRunners(r)
	if len(after) != 2 || !slices.Equal(after["db"], before["db"]) || len(after["web"]) != 1 || !strings.HasPrefix(after["web"][0], place["web"]+"/") {
		t.Fatalf("machines after takeover: %v, want db as it was (%v) and web once on %s", after, before["db"], place["web"])
	}
	if out := outputsOfAPI(t, end); out.Placement["db"] != place["db"] || out.Placement["web"] != place["web"] {
		t.Fatalf("job placed %v, apply %v", out.Placement, place)
	}

	// The killed leader's orders, were it frozen rather than dead, reach
	// the hosts with its epoch: refused, the machines untouched.
	for _, m := range []string{"db", "web"} {
		h := r.Named(place[m])
		err := h.C.StopMachine(fence.WithEpoch(ctx, epoch), orchestrator.SiteRecovery, m)
		var re *hostapi.RemoteError
		if !errors.Is(err, fence.ErrStale) || !errors.As(err, &re) || re.Status != http.StatusConflict {
			t.Fatalf("stop %s on %s with the old leader's epoch %d: %v, want 409 stale", m, h.Name, epoch, err)
		}
	}
	if now := hostRunners(r); !maps.EqualFunc(now, after, slices.Equal[[]string]) {
		t.Fatalf("machines after the stale orders: %v, were %v", now, after)
	}

	c, err := p.clients[1].Submit(ctx, "shop", string(orchestrator.CancelFailover), api.Params{})
	if err != nil {
		t.Fatal(err)
	}
	if end, err := p.clients[1].Watch(ctx, c.ID, nil); err != nil || end.State != api.JobSucceeded {
		t.Fatalf("cancel: %+v %v\n%s", end, err, s.log("ha1"))
	}
	if now := hostRunners(r); len(now) != 0 {
		t.Fatalf("machines after the cancel: %v", now)
	}
	for _, h := range r.Hosts {
		if _, err := os.Stat("/run/netns/" + h.C.SiteNS(orchestrator.SiteRecovery)); err == nil {
			t.Fatalf("the recovery site's namespace is left on %s", h.Name)
		}
	}
}

// hostRunners lists the machine processes (`haven machine run`) of the
// rig's hosts by machine, as "host/pid".
func hostRunners(r *hostRig) map[string][]string {
	out := map[string][]string{}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		args := strings.Split(string(b), "\x00")
		if len(args) < 5 || args[1] != "machine" || args[2] != "run" {
			continue
		}
		for _, h := range r.Hosts {
			if strings.HasPrefix(args[4], h.Dir+"/") {
				m := strings.TrimSuffix(filepath.Base(args[4]), ".json")
				out[m] = append(out[m], h.Name+"/"+filepath.Base(filepath.Dir(p)))
			}
		}
	}
	return out
}
