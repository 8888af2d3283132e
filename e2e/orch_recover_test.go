package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/demo/rig"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/client"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestRecoverControlPlaneOnBlankMachine loses the control plane whole in
// the middle of a failover: the primary site has died, the server has
// begun an unplanned failover (it waits at a manual step with the database
// up), and then its machine burns — process, state, token files, TLS CA,
// its recovery site — and retention prunes the vault to one point per
// machine. A blank machine (a network namespace of its own, reaching the
// agent and customers only through relays, an empty state directory and
// no token file) gets only a server config naming the vault and the
// password, and recovers with --recover-from-vault --new-admin-token. It
// shows the old drill and point history, retries the interrupted
// failover to the end (machines in the recovery network, DNS moved),
// accepts the agent with its existing token once the primary returns,
// and fails back.
func TestRecoverControlPlaneOnBlankMachine(t *testing.T) {
	s := newDRSite(t)
	ctx := context.Background()
	// The lost machine's copies of the agent's and haven dns's tokens.
	etc := filepath.Join(s.xfs, "server-etc")
	copyFile(t, s.agentToken, filepath.Join(etc, "agent.token"))
	copyFile(t, s.r.DNSToken(), filepath.Join(etc, "dns.token"))
	s.applyDoc(rig.Shop{AgentURL: fmt.Sprintf("http://127.0.0.1:%d", s.agentPort), AgentToken: filepath.Join(etc, "agent.token"),
		DBPort: 80, Timeout: "1m", DNSToken: filepath.Join(etc, "dns.token"), Edge: s.inet, Resolve: "127.0.0.1:53",
		WebBefore: `{type: manual, message: "move customers?", types: [unplanned]}`}.YAML())
	s.waitPoints(3)
	trep, r := s.runJob("failover", "test", "--plan", "shop")
	if r.code != 0 || trep.State != string(store.Succeeded) {
		t.Fatalf("test failover: exit %d %s: %s", r.code, trep.State, trep.Error)
	}
	if crep, r := s.runJob("failover", "cleanup", "--plan", "shop", "--note", "before the fire"); r.code != 0 || crep.State != string(store.Succeeded) {
		t.Fatalf("cleanup: exit %d %s: %s", r.code, crep.State, crep.Error)
	}
	month := time.Now().UTC().Format("2006-01")
	oldReport, err := s.client.SLAReport(ctx, "shop", month)
	if err != nil {
		t.Fatal(err)
	}
	oldAdmin, oldViewer := readToken(t, filepath.Join(s.serverState, "admin.token")), readToken(t, filepath.Join(s.serverState, "viewer.token"))

	// The primary dies; the failover begins and waits before web.
	s.kill("agent", syscall.SIGKILL)
	for _, m := range []string{"db", "web"} {
		s.r.KillMachine(m)
	}
	s.must(s.r.CutPrimary())
	j, err := s.client.Submit(ctx, "shop", "unplanned-failover", api.Params{})
	if err != nil {
		t.Fatal(err)
	}
	s.eventually(2*time.Minute, "the failover at its manual step", func() error {
		got, err := s.client.Job(ctx, j.ID)
		if err != nil || got.State != api.JobWaiting {
			return fmt.Errorf("job %+v, %v", got, err)
		}
		return nil
	})
	s.eventually(time.Minute, "the failover in the vault's catalog", func() error {
		c, err := s.readCatalog(ctx)
		if err != nil {
			return err
		}
		for _, cj := range c.Jobs {
			if cj.ID == j.ID && cj.Record != nil {
				return nil
			}
		}
		return fmt.Errorf("catalog has no record of %s", j.ID)
	})

	// The control plane's machine burns, and retention prunes the vault.
	s.kill("server", syscall.SIGKILL)
	s.removeRecoverySite()
	for _, d := range []string{s.serverState, etc} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	mustHaven(t, s.env, "vault", "prune", "--keep-last", "1")

	// The blank machine.
	blank := s.lab.ID + "-blank"
	s.must(vnet.Netlink{}.AddNS(blank))
	s.r.Defer("ip netns del "+blank, func() error { return vnet.Netlink{}.DelNS(blank) })
	relay(t, s.r, "", blank, fmt.Sprintf("127.0.0.1:%d", s.serverPort))
	relay(t, s.r, blank, "", fmt.Sprintf("127.0.0.1:%d", s.agentPort))
	s.serverState = filepath.Join(s.xfs, "server-new")
	s.r.Env = append(baseEnv(), s.env...)
	srv := s.server("--recover-from-vault", "--new-admin-token")
	srv.NetNS = blank
	if s.client, err = s.r.StartServer(ctx, srv); err != nil {
		t.Fatalf("%v\nserver log:\n%s", err, s.log("server"))
	}
	log := s.log("server")
	for _, want := range []string{"new admin token written to " + filepath.Join(s.serverState, "admin.token"), "state recovered from the vault"} {
		if !strings.Contains(log, want) {
			t.Errorf("server output lacks %q:\n%s", want, log)
		}
	}
	for _, tok := range []string{oldAdmin, oldViewer, readToken(t, s.agentToken)} {
		if strings.Contains(log, tok) {
			t.Fatalf("a token is in the server's output:\n%s", log)
		}
	}
	for _, f := range []string{"agent.token", "dns.token"} {
		if fi, err := os.Stat(filepath.Join(etc, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("restored %s: %v, %v", f, fi, err)
		}
	}
	if fi, err := os.Stat(etc); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("restored token directory: %v, %v", fi, err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", s.serverPort)
	var ce *client.Error
	if _, err := client.New(addr, oldAdmin, 10*time.Second).Status(ctx); !errors.As(err, &ce) || ce.Status != 401 {
		t.Fatalf("the replaced admin token: %v, want 401", err)
	}
	if _, err := client.New(addr, oldViewer, 10*time.Second).Status(ctx); err != nil {
		t.Fatalf("the lost server's viewer token: %v", err)
	}

	// What the old server recorded.
	ds, err := s.client.Drills(ctx, "shop")
	if err != nil || len(ds) != 1 || ds[0].JobID != trep.Job || !ds[0].Passed || ds[0].Note != "before the fire" {
		t.Fatalf("drill history after recovery: %+v, %v", ds, err)
	}
	rep, err := s.client.SLAReport(ctx, "shop", month)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DrillsRun != oldReport.DrillsRun || rep.Passed != oldReport.Passed || len(rep.Machines) != len(oldReport.Machines) {
		t.Fatalf("report after recovery %+v, before %+v", rep, oldReport)
	}
	for i, m := range rep.Machines {
		o := oldReport.Machines[i]
		// One point per machine is left in the vault: the rest is the
		// catalog's history.
		if m.Machine != o.Machine || !m.MeasuredFrom.Equal(o.MeasuredFrom) || m.Points < o.Points || o.Points < 3 {
			t.Errorf("%s after recovery: from %s, %d points; before: from %s, %d points", m.Machine, m.MeasuredFrom, m.Points, o.MeasuredFrom, o.Points)
		}
	}
	got, err := s.client.Job(ctx, j.ID)
	if err != nil || got.State != api.JobFailed || !strings.Contains(got.Error, "control plane was lost") {
		t.Fatalf("interrupted failover after recovery: %+v, %v", got, err)
	}
	r = haven(t, s.env, "server", "--config", filepath.Join(s.dir, "server.yaml"), "--recover-from-vault")
	if r.code != 2 || !strings.Contains(r.stderr, "state.db exists") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("recovery over existing state: exit %d: %s", r.code, r.stderr)
	}

	// The interrupted failover, retried on the blank machine.
	// The CLI follows the job and stops where it waits (exit 14).
	if r := haven(t, s.serverEnv(), "job", "retry", j.ID); r.code != 14 || !strings.Contains(r.stderr, "waits for approval") {
		t.Fatalf("job retry: exit %d %s\n%s", r.code, r.stderr, s.log("server"))
	}
	if _, err := s.client.Approve(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if end, err := s.client.Watch(ctx, j.ID, nil); err != nil || end.State != api.JobSucceeded {
		t.Fatalf("retried failover: %+v, %v\n%s", end, err, s.log("server"))
	}
	if err := s.expectDNS(rig.RecWeb); err != nil {
		t.Fatal(err)
	}
	if out, err := s.http(s.inet, "GET", "http://"+rig.RecWeb+"/", ""); err != nil || !strings.Contains(out, "hello from web") {
		t.Fatalf("recovered web through the customers' network: %q %v", out, err)
	}

	// The primary returns: its network, and its agent with its token.
	if r := haven(t, s.serverEnv(), "failover", "commit", "--plan", "shop"); r.code != 0 {
		t.Fatalf("commit: %d %s", r.code, r.stderr)
	}
	if rep, r := s.runJob("reprotect", "--plan", "shop"); r.code != 0 || rep.State != string(store.Succeeded) {
		t.Fatalf("reprotect: %d %s", r.code, rep.Error)
	}
	s.must(s.r.Reconnect())
	s.must(s.r.RunAgent())
	s.eventually(time.Minute, "the agent's heartbeats accepted", func() error {
		if st := mustHaven(t, s.serverEnv(), "status"); !strings.Contains(st, "agent prim: healthy=true") {
			return fmt.Errorf("haven status:\n%s", st)
		}
		return nil
	})
	fb, r := s.runJob("failback", "--plan", "shop")
	if r.code != 0 || fb.State != string(store.Succeeded) {
		t.Fatalf("failback: exit %d %s: %s\nagent log:\n%s", r.code, fb.State, fb.Error, s.log("agent"))
	}
	s.eventually(time.Minute, "DNS back on the primary", func() error { return s.expectDNS(rig.PrimWeb) })
	if out, err := s.http(s.inet, "GET", "http://"+rig.PrimWeb+"/", ""); err != nil || !strings.Contains(out, "hello from web") {
		t.Fatalf("the primary's web after failback: %q %v", out, err)
	}
	if pst, err := s.client.Plan(ctx, "shop"); err != nil || pst.Phase != "protected" {
		t.Fatalf("plan after failback: %+v %v", pst, err)
	}
}

// relay carries TCP connections to addr in namespace from ("": this
// test's own) to addr in namespace to: the network between the blank
// machine and the others. Every socket is on a loopback.
func relay(t *testing.T, r *rig.Rig, from, to, addr string) {
	var l net.Listener
	var err error
	if from == "" {
		l, err = net.Listen("tcp", addr)
	} else {
		l, err = vnet.Listen(from, "tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	r.Defer("# relay "+addr+" closed", l.Close)
	dial := func() (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if to == "" {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
		return vnet.DialContext(ctx, to, "tcp", addr)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				d, err := dial()
				if err != nil {
					return // the far side is down: the caller sees the connection end
				}
				defer d.Close()
				go func() { io.Copy(d, c); d.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, d)
			}()
		}
	}()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// readCatalog reads the server's catalog as a new machine would: from
// the vault URL and the password.
func (s *drSite) readCatalog(ctx context.Context) (*server.Catalog, error) {
	be, err := blobopen.Open(ctx, s.vaultURL, blob.DefaultLimits())
	if err != nil {
		return nil, err
	}
	defer be.Close()
	v, err := vault.Open(ctx, be, "correct horse", vault.Options{})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	_, b, _, err := v.LatestCatalog(ctx, "server")
	if err != nil {
		return nil, err
	}
	var c server.Catalog
	return &c, json.Unmarshal(b, &c)
}
