package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/host/hostapi"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/testenv"
)

// memoryShop is one ns machine of the guest image with a 64 MiB limit.
const memoryShop = hostsNets + `machines:
  - {name: db, cpus: 1, memory_mb: 64, disks: [{name: root}], health: {http_port: 80, http_path: /}, health_timeout: 1m,
     nics: [{name: eth0, network: prod, address: 10.1.0.10/24, recovery: static, static: 10.2.0.10}]}
plans:
  - name: shop
    groups: [{name: database, machines: [db]}]
`

// TestRecoveredMachineOverMemory: a recovered ns machine with a 64 MiB
// limit, on a recovery host served by hostapi (`haven host`'s code, its
// machines detached in `haven machine run` as in production), runs a
// process that wants 256 MiB. The kernel kills it in the machine's
// cgroup; the host reports the kill, the server raises the memory alert
// (warning) and shows it in the API and `haven status`, resolves it once
// no kill follows for alerts.memory_quiet, and drops the machine from
// the status when the failover is cancelled.
func TestRecoveredMachineOverMemory(t *testing.T) {
	testenv.RequireRoot(t)
	ctx := context.Background()
	dir, vaultURL, pw := hostsVault(t)

	hostDir := filepath.Join(dir, "host-a")
	hc := &hostapi.Config{Listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)), StateDir: hostDir, TokenFile: filepath.Join(hostDir, "token"),
		Vault: vaultURL, PasswordFile: pw, Exec: havenBin}
	hc.TLS.Dir = filepath.Join(hostDir, "tls")
	hostsMust(t, os.MkdirAll(hostDir, 0o700))
	hctx, stopHost := context.WithCancel(ctx)
	up, hostDone := make(chan net.Addr, 1), make(chan error, 1)
	go func() { hostDone <- hostapi.Run(hctx, hc, func(a net.Addr) { up <- a }) }()
	select {
	case <-up:
	case err := <-hostDone:
		t.Fatalf("haven host: %v", err)
	}
	hostClient := memoryHostClient(t, hc)
	t.Cleanup(func() {
		// Only after a failure is anything left: the cancel below removes
		// the site and its machine.
		cctx, cancel := context.WithTimeout(fence.WithEpoch(context.Background(), 1<<40), time.Minute)
		defer cancel()
		if err := hostClient.RemoveSite(cctx, orchestrator.SiteRecovery); err != nil {
			t.Errorf("remove the recovery site: %v", err)
		}
		stopHost()
		<-hostDone
	})

	off := false
	port := freePort(t)
	cfg := &server.Config{Listen: fmt.Sprintf("127.0.0.1:%d", port), StateDir: filepath.Join(dir, "server"), Vault: vaultURL,
		PasswordFile: pw, Standby: &off,
		Hosts: []server.HostConfig{{Name: "a", URL: "https://" + hc.Listen, TokenFile: hc.TokenFile, CAFile: filepath.Join(hc.TLS.Dir, "ca.crt"),
			CPUs: 4, MemoryMB: 1024}}}
	cfg.Alerts.Interval = time.Second
	cfg.Alerts.MemoryQuiet = 20 * time.Second
	hostsMust(t, cfg.Defaults())
	c := startHostsServer(t, cfg, nil)
	cliEnv := []string{fmt.Sprintf("HAVEN_SERVER=127.0.0.1:%d", port), "HAVEN_TOKEN_FILE=" + cfg.TokenFile}

	_, err := c.Apply(ctx, []byte(memoryShop))
	hostsMust(t, err)
	j, err := c.Submit(ctx, "shop", string(orchestrator.UnplannedFailover), api.Params{})
	hostsMust(t, err)
	if j = waitHostsJob(t, c, j.ID); j.State != "succeeded" {
		t.Fatalf("failover: %s: %s", j.State, j.Error)
	}

	r := recoveredDB(t, c)
	if !r.Running || r.Host != "a" || r.Site != "rec" || r.Job != j.ID || r.Memory == nil ||
		r.Memory.Source != "cgroup" || r.Memory.LimitMB != 64 || r.Memory.OOMKills != 0 || r.Memory.UsageMB <= 0 {
		t.Fatalf("db at the recovery site before the hog: %+v (memory %+v)", r, r.Memory)
	}
	if a := memoryAlert(t, c); a != nil {
		t.Fatalf("memory alert before any kill: %+v", a)
	}
	// The cgroups the machine's runner made (v1 here: memory and cpu),
	// which must be gone after the cancel.
	b, err := os.ReadFile(filepath.Join(hostDir, "host", "machines", "rec", "detached", "state", "db", "cgroup.v1"))
	hostsMust(t, err)
	cgroups := strings.Fields(string(b))
	if len(cgroups) == 0 {
		t.Fatal("db runs without limit cgroups")
	}

	// The guest's /eat allocates in a child process of the machine.
	info, err := hostClient.Info(ctx)
	hostsMust(t, err)
	resp, err := machine.HTTPClient(info.ID+"-"+orchestrator.SiteRecovery).Post("http://10.2.0.10/eat?mb=256", "", nil)
	hostsMust(t, err)
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(out), "killed") {
		t.Fatalf("the memory hog in db: %q, want it killed", out)
	}

	var alert *api.Alert
	testenv.Eventually(t, time.Minute, "the memory alert", func() bool {
		alert = memoryAlert(t, c)
		return alert != nil
	})
	if alert.Severity != "warning" || !strings.Contains(alert.Summary, "machine db") || !strings.Contains(alert.Summary, "host a") ||
		!strings.Contains(alert.Summary, "64 MiB") || !strings.Contains(alert.Summary, "killed for want of memory") {
		t.Fatalf("memory alert: %+v", alert)
	}
	r = recoveredDB(t, c)
	if r.Memory == nil || r.Memory.OOMKills == 0 || r.Memory.AtLimit == 0 {
		t.Fatalf("db after the hog: %+v (memory %+v), want its kill and limit counted", r, r.Memory)
	}
	st := mustHaven(t, cliEnv, "status")
	t.Logf("haven status:\n%s", st)
	for _, want := range []string{"machine db: recovered copy (plan shop, site rec, host a): running, memory",
		"of 64 MiB", "IT WENT OVER ITS MEMORY LIMIT", "ALERT: machine db (plan shop, site rec, host a) over its memory limit"} {
		if !strings.Contains(st, want) {
			t.Errorf("haven status lacks %q:\n%s", want, st)
		}
	}

	// No kill since: the alert resolves after memory_quiet; the counts
	// stay (the machine ran short once).
	testenv.Eventually(t, 2*time.Minute, "the memory alert to resolve", func() bool { return memoryAlert(t, c) == nil })
	if r := recoveredDB(t, c); !r.Running || r.Memory == nil || r.Memory.OOMKills == 0 {
		t.Fatalf("db after the alert resolved: %+v", r)
	}

	cj, err := c.Submit(ctx, "shop", string(orchestrator.CancelFailover), api.Params{})
	hostsMust(t, err)
	if cj = waitHostsJob(t, c, cj.ID); cj.State != "succeeded" {
		t.Fatalf("cancel: %s: %s", cj.State, cj.Error)
	}
	sts, err := c.Status(ctx)
	hostsMust(t, err)
	for _, m := range sts.Machines {
		if len(m.Recovered) != 0 {
			t.Fatalf("%s still has recovered copies after the cancel: %+v", m.Name, m.Recovered)
		}
	}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left after the cancel: %v", cg, err)
		}
	}
}

// hostsVault is a scratch directory with a file vault that
// seedHostsVault filled, and the vault's password file.
func hostsVault(t *testing.T) (dir, vaultURL, pw string) {
	dir = testenv.Dir(t)
	vaultURL = "file://" + filepath.Join(dir, "vault")
	seedHostsVault(t, vaultURL)
	pw = filepath.Join(dir, "password")
	hostsMust(t, os.WriteFile(pw, []byte("correct horse\n"), 0o600))
	return dir, vaultURL, pw
}

func memoryHostClient(t *testing.T, hc *hostapi.Config) *hostapi.Client {
	tok, err := os.ReadFile(hc.TokenFile)
	hostsMust(t, err)
	c, err := hostapi.NewClient("https://"+hc.Listen, strings.TrimSpace(string(tok)), filepath.Join(hc.TLS.Dir, "ca.crt"), "")
	hostsMust(t, err)
	return c
}

// recoveredDB is db's one recovered copy in the status.
func recoveredDB(t *testing.T, c *client.Client) api.RecoveredMachine {
	t.Helper()
	st, err := c.Status(context.Background())
	hostsMust(t, err)
	i := slices.IndexFunc(st.Machines, func(m api.MachineStatus) bool { return m.Name == "db" })
	if i < 0 || len(st.Machines[i].Recovered) != 1 {
		t.Fatalf("status: want db with one recovered copy: %+v", st.Machines)
	}
	return st.Machines[i].Recovered[0]
}

// memoryAlert is db's memory alert in the status, or nil.
func memoryAlert(t *testing.T, c *client.Client) *api.Alert {
	t.Helper()
	st, err := c.Status(context.Background())
	hostsMust(t, err)
	for _, a := range st.AlertDetails {
		if a.ID == "memory/rec/db" {
			return &a
		}
	}
	return nil
}
