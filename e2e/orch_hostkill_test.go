package e2e

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet"
)

// rigServer runs the real server in process (its API over HTTP on
// loopback) on the rig's hosts, 4 CPUs each, reached from the control
// namespace; standby says whether it keeps standby images (refreshed
// every 2 s), edges whether host a's uplink is the recovery site's
// (edgeOf; each edge host uses its own `edge:`).
func rigServer(t *testing.T, r *hostRig, standby, edges bool) *client.Client {
	dir := testenv.Dir(t)
	cfg := &server.Config{Listen: "127.0.0.1:0", StateDir: filepath.Join(dir, "server"), Vault: "file://" + filepath.Join(r.base, "vault"),
		PasswordFile: filepath.Join(r.base, "vault.pw"), Standby: &standby, StandbyInterval: 2 * time.Second}
	for _, h := range r.Hosts {
		cfg.Hosts = append(cfg.Hosts, server.HostConfig{Name: h.Name, URL: h.URL(), TokenFile: h.Token(), CAFile: h.CAFile(), CPUs: 4, MemoryMB: 4096,
			Edge: edges && edgeOf(h.Name) != ""})
	}
	if edges {
		cfg.Edge = server.EdgeConfig{Interface: "eth0"}
	}
	hostsMust(t, cfg.Defaults())
	return startHostsServer(t, cfg, func(_ context.Context, hc server.HostConfig, _ *vault.Vault) (host.Host, error) {
		return r.Client(r.Named(hc.Name), filepath.Join(cfg.StateDir, "disks"))
	})
}

// snapshotAll takes one point of each machine's root disk (the guest
// image) into the rig's vault.
func (r *hostRig) snapshotAll(t *testing.T, machines ...string) {
	for _, m := range machines {
		mustHaven(t, nil, append([]string{"snapshot", "--machine", m, "--disk", "root=" + machinetest.Image(t)}, r.vault...)...)
	}
}

// TestHostsKilled: the real server drives three `haven host` processes
// (newHostRig), and hosts die as in a power loss (hostrig's Kill: the
// underlay link down, the haven host SIGKILLed, every process of its
// machines killed). shop's db and web go on two hosts. web's health
// check relays to a listener of the test on the recovery network's
// gateway of its host (healthGate): on web's host it answers nothing, so
// the failover waits in web's health call there, and the test kills that
// host once the check has reached it twice. The job fails naming the
// host, an alert names it, and `job retry` starts web on the third host
// (whose gate answers) while db keeps running as the one process it
// was. Then db's host dies: an alert names it and the plan, and
// recover-machines brings db up on the host left, from its newest
// point, where it answers its health check.
func TestHostsKilled(t *testing.T) {
	r := newHostRig(t)
	ctx := context.Background()
	r.snapshotAll(t, "db", "web")
	doc := strings.Replace(hostsShop, "health: {http_port: 80, http_path: /}, health_timeout: 1m",
		`health: {http_port: 80, http_path: "/fetch?addr=10.2.0.1:8099"}, health_timeout: 30s`, 1)
	c := rigServer(t, r, false, false)
	res, err := c.Apply(ctx, []byte(doc))
	hostsMust(t, err)
	dbOn, webOn := res.Placement["db"], res.Placement["web"]
	if dbOn == "" || webOn == "" || dbOn == webOn {
		t.Fatalf("db and web (2 CPUs each) on empty hosts of 4: want two hosts, got %v", res.Placement)
	}
	third := r.Hosts[slices.IndexFunc(r.Hosts, func(h *recoveryHost) bool { return h.Name != dbOn && h.Name != webOn })].Name
	var dbRunner []string
	failedOver := false

	t.Run("killed mid-failover", func(t *testing.T) {
		j, err := c.Submit(ctx, "shop", string(orchestrator.UnplannedFailover), api.Params{})
		hostsMust(t, err)
		waitRunner(t, r, "web", webOn)
		polled := healthGate(t, r.Named(webOn).C.SiteNS(orchestrator.SiteRecovery), false)
		healthGate(t, r.Named(third).C.SiteNS(orchestrator.SiteRecovery), true)
		for i := range 2 {
			select {
			case <-polled:
			case <-time.After(2 * time.Minute):
				t.Fatalf("web's health check reached the gate on %s %d times in 2 min, want 2", webOn, i)
			}
		}
		dbRunner = hostRunners(r)["db"]
		if len(dbRunner) != 1 || !strings.HasPrefix(dbRunner[0], dbOn+"/") {
			t.Fatalf("db runners when web's host dies: %v, want one on %s", dbRunner, dbOn)
		}
		r.Kill(t, r.Named(webOn))
		if j = waitHostsJob(t, c, j.ID); j.State != "failed" || !strings.Contains(j.Error, "host "+webOn+": ") {
			dumpJob(t, c, j)
			t.Fatalf("failover: %s: %q, want failed naming host %s", j.State, j.Error, webOn)
		}
		hostLostAlert(t, c, webOn, "")
		_, err = c.Retry(ctx, j.ID)
		hostsMust(t, err)
		if j = waitHostsJob(t, c, j.ID); j.State != "succeeded" {
			dumpJob(t, c, j)
			t.Fatalf("retry: %s: %s", j.State, j.Error)
		}
		run := hostRunners(r)
		if !slices.Equal(run["db"], dbRunner) || len(run["web"]) != 1 || !strings.HasPrefix(run["web"][0], third+"/") {
			t.Fatalf("machines after the retry: %v; want db as it was (%v), web once on %s", run, dbRunner, third)
		}
		if out := outputsOfAPI(t, j); out.Placement["web"] != third || out.Placement["db"] != dbOn {
			t.Fatalf("job records %v, want db on %s, web on %s", out.Placement, dbOn, third)
		}
		failedOver = true
	})

	t.Run("lost after failover", func(t *testing.T) {
		if !failedOver {
			t.Skip("the failover did not finish")
		}
		webRunner := hostRunners(r)["web"]
		r.Kill(t, r.Named(dbOn))
		hostLostAlert(t, c, dbOn, "shop")
		j := runJob(t, c, "shop", orchestrator.RecoverMachines)
		if out := outputsOfAPI(t, j); !slices.Equal(out.Lost, []string{"db"}) || out.Placement["db"] != third {
			t.Fatalf("recover-machines: lost %v, placed %v; want db lost and placed on %s", out.Lost, out.Placement, third)
		}
		run := hostRunners(r)
		if !slices.Equal(run["web"], webRunner) || len(run["db"]) != 1 || !strings.HasPrefix(run["db"][0], third+"/") {
			t.Fatalf("machines after recover-machines: %v; want web as it was (%v), db once on %s", run, webRunner, third)
		}
		ns := r.Named(third).C.SiteNS(orchestrator.SiteRecovery)
		if body, err := getFrom(ns, "10.2.0.10"); err != nil || !strings.Contains(body, "hello from db") {
			t.Fatalf("db on %s: %q, %v", third, body, err)
		}
		runJob(t, c, "shop", orchestrator.CancelFailover)
		if run := hostRunners(r); len(run) != 0 {
			t.Fatalf("machines after the cancel: %v", run)
		}
	})
}

// healthGate listens in site namespace ns on the recovery network's
// gateway (local on every host's bridge), where web's health check
// relays: ready answers, otherwise each connection is closed unanswered
// (web stays unhealthy). The channel tells each time a check arrived.
func healthGate(t *testing.T, ns string, ready bool) <-chan struct{} {
	ln, err := vnet.Listen(ns, "tcp", "10.2.0.1:8099")
	hostsMust(t, err)
	t.Cleanup(func() { ln.Close() })
	polled := make(chan struct{}, 16)
	if ready {
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ready") }))
		return polled
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			select {
			case polled <- struct{}{}:
			default:
			}
		}
	}()
	return polled
}

// waitRunner waits until machine m's runner runs on host on.
// dumpJob logs a job's steps and log, for a failure's reader.
func dumpJob(t *testing.T, c *client.Client, j *api.Job) {
	for _, st := range j.Steps {
		if st.Started != nil && st.Ended != nil {
			t.Logf("step %q %s %s..%s (%v) tries %d %s", st.Name, st.State, st.Started.Format("15:04:05"), st.Ended.Format("15:04:05"), st.Ended.Sub(*st.Started), st.Tries, st.Error)
		}
	}
	ls, _ := c.Logs(context.Background(), j.ID, 0)
	for _, l := range ls {
		t.Logf("%s %s %s", l.Time.Format("15:04:05.0"), l.Level, l.Msg)
	}
}

func waitRunner(t *testing.T, r *hostRig, m, on string) {
	t.Helper()
	testenv.Eventually(t, 3*time.Minute, m+" started on "+on, func() bool {
		run := hostRunners(r)[m]
		return len(run) == 1 && strings.HasPrefix(run[0], on+"/")
	})
}

// hostLostAlert waits until the server's status carries the host-lost
// alert of name (and names plan's recover-machines, if plan is set).
func hostLostAlert(t *testing.T, c *client.Client, name, plan string) {
	t.Helper()
	var got []api.Alert
	testenv.Eventually(t, time.Minute, "alert host-lost/"+name, func() bool {
		st, err := c.Status(context.Background())
		if err != nil {
			return false
		}
		got = st.AlertDetails
		return slices.ContainsFunc(got, func(a api.Alert) bool {
			return a.ID == "host-lost/"+name && a.Severity == "critical" && a.Resolved == nil &&
				(plan == "" || strings.Contains(a.Summary, "recover-machines --plan "+plan))
		})
	})
}

// TestHostStandbyLost: with standby images on, the real server keeps
// cache's on the host apply placed it on (a `haven host` process of a
// two-host rig); that host dies (hostrig's Kill): an alert names it,
// and the standby loop places cache on the other host and builds its
// image there, which a failover then clones.
func TestHostStandbyLost(t *testing.T) {
	r := newHostRigOf(t, "a", "b")
	ctx := context.Background()
	r.snapshotAll(t, "cache")
	c := rigServer(t, r, true, false)
	res, err := c.Apply(ctx, []byte(hostsNets+`machines:
  - {name: cache, cpus: 2, disks: [{name: root}], health: {http_port: 80, http_path: /}, health_timeout: 2m,
     nics: [{name: eth0, network: prod, address: 10.1.0.30/24, recovery: static, static: 10.2.0.30}]}
plans:
  - {name: extra, groups: [{name: cache, machines: [cache]}]}
`))
	hostsMust(t, err)
	from := res.Placement["cache"]
	to := "a"
	if from == "a" {
		to = "b"
	}
	testenv.Eventually(t, 2*time.Minute, "cache's standby image on "+from, func() bool {
		return r.Named(from).C.StandbyPoint("cache", "root") != ""
	})
	r.Kill(t, r.Named(from))
	hostLostAlert(t, c, from, "")
	testenv.Eventually(t, 2*time.Minute, "cache's standby image rebuilt on "+to, func() bool {
		return r.Named(to).C.StandbyPoint("cache", "root") != ""
	})
	j := runJob(t, c, "extra", orchestrator.UnplannedFailover)
	rep, err := c.Report(ctx, j.ID)
	hostsMust(t, err)
	if out := outputsOfAPI(t, j); out.Placement["cache"] != to || len(rep.Disks) != 1 || rep.Disks[0].Method != "standby-clone" {
		t.Fatalf("failover after the loss: placed %v, disks %+v; want cache on %s from its standby image", out.Placement, rep.Disks, to)
	}
	runJob(t, c, "extra", orchestrator.CancelFailover)
}
