package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/demo/rig"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/nat"
	"github.com/haven-dr/haven/internal/vnet/wg"
)

// netLeft is what the recovery network put outside its sites: hv…
// tables of this server's host in the uplink's namespace and tunnel
// processes of this server's state.
func netLeft(t *testing.T, s *drSite) (tables []string, tunnels int) {
	t.Helper()
	tables, err := nat.List(s.inet, s.hostID())
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range procs {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "HAVEN_WG_CHILD="+s.serverState) {
			tunnels++
		}
	}
	return tables, tunnels
}

// TestRecoveryNetworkThroughServer: the server's uplink is a host
// interface (hvcust, a veth in the internet's namespace, which stands for
// the recovery host here), its web server is published on 203.0.113.7,
// and an office joins the recovery network by WireGuard. A drill
// publishes nothing and is not reached from the office; a planned
// failover publishes web (real HTTP from a customer's namespace beyond the
// host) and brings the tunnel up (the office reaches db); the tunnel and
// the table outlive a server killed and restarted; cancel removes both.
func TestRecoveryNetworkThroughServer(t *testing.T) {
	s := newDRSite(t)
	testenv.LookPath(t, "nft")
	ctx := context.Background()
	ops := vnet.Netlink{}
	cust, office := s.lab.ID+"-cust", s.lab.ID+"-office"
	for _, ns := range []string{cust, office} {
		s.must(ops.AddNS(ns))
		t.Cleanup(func() { ops.DelNS(ns) })
	}
	p := netip.MustParsePrefix
	for _, err := range []error{
		ops.AddVeth(cust, "eth0", s.inet, "hvcust", nil),
		ops.AddAddr(cust, "eth0", p("203.0.113.100/24")),
		ops.LinkUp(cust, "eth0"),
		ops.AddAddr(s.inet, "hvcust", p("203.0.113.7/24")),
		ops.LinkUp(s.inet, "hvcust"),
		ops.AddVeth(office, "eth0", s.inet, "hvoff", nil),
		ops.AddAddr(office, "eth0", p("198.51.100.2/24")),
		ops.LinkUp(office, "eth0"),
		ops.AddAddr(s.inet, "hvoff", p("198.51.100.1/24")),
		ops.LinkUp(s.inet, "hvoff"),
	} {
		s.must(err)
	}
	key := func(name string) (string, string) {
		priv := wg.GenerateKey()
		pub, _ := wg.PublicKey(priv)
		return s.write(name+".key", priv+"\n"), pub
	}
	siteKey, sitePub := key("wg-site")
	officeKey, officePub := key("wg-office")
	officeDir := filepath.Join(s.dir, "office-wg")
	s.must(wg.Start(officeDir, office, office, wg.Config{Name: "dr", PrivateKeyFile: officeKey, ListenPort: 51821, Userspace: true,
		Address: p("192.168.50.1/24"), Peers: []wg.Peer{{PublicKey: sitePub, Endpoint: "198.51.100.1:51820",
			AllowedIPs: []netip.Prefix{p("10.2.0.0/24")}, Keepalive: time.Second}}}))
	t.Cleanup(func() { wg.StopAll(officeDir) })

	srv := s.server()
	srv.Edge = fmt.Sprintf("{netns: %s, interface: hvcust}", s.inet)
	// userspace: the test counts the tunnel's process (vnet/wg tests the
	// kernel-or-userspace choice).
	srv.Extra = fmt.Sprintf("tunnels:\n  - {name: office, private_key_file: %s, listen_port: 51820, userspace: true, peers: [{public_key: %q, allowed_ips: [192.168.50.0/24]}]}\n",
		siteKey, officePub)
	restart := func(sig syscall.Signal) {
		s.kill("server", sig)
		s.r.Env = append(baseEnv(), s.env...)
		c, err := s.r.StartServer(ctx, srv)
		if err != nil {
			t.Fatalf("%v\nserver log:\n%s", err, s.log("server"))
		}
		s.client = c
	}
	restart(syscall.SIGTERM)
	s.applyDoc(strings.Replace(s.protection(), "    health: {http_port: 80, http_path: /}\n",
		"    health: {http_port: 80, http_path: /}\n    publish: [{port: 80, on: \"203.0.113.7:8443\"}]\n", 1))
	s.waitPoints(1)
	const published = "http://203.0.113.7:8443/"

	// A drill: nothing published, no tunnel, the office reaches nothing.
	rep, r := s.runJob("failover", "test", "--plan", "shop")
	if r.code != 0 || rep.State != string(store.Succeeded) {
		t.Fatalf("test failover: exit %d %s: %s\n%s", r.code, rep.State, rep.Error, r.stderr)
	}
	for _, st := range rep.Steps {
		if strings.Contains(st.Name, "publish") {
			t.Errorf("the drill has a publish step: %s", st.Name)
		}
	}
	if tables, tunnels := netLeft(t, s); len(tables) != 0 || tunnels != 0 {
		t.Errorf("during the drill: tables %v, %d tunnel processes", tables, tunnels)
	}
	if out, err := s.http(cust, "GET", published, ""); err == nil {
		t.Errorf("the published address answers during a drill: %q", out)
	}
	if out, err := s.http(office, "GET", "http://10.2.0.10/", ""); err == nil {
		t.Errorf("the office reached the drill's copy: %q", out)
	}
	if _, r := s.runJob("failover", "cleanup", "--plan", "shop"); r.code != 0 {
		t.Fatalf("cleanup: exit %d %s", r.code, r.stderr)
	}

	// The failover.
	rep, r = s.runJob("failover", "planned", "--plan", "shop")
	if r.code != 0 || rep.State != string(store.Succeeded) {
		t.Fatalf("planned failover: exit %d %s: %s\n%s", r.code, rep.State, rep.Error, s.log("server"))
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "none of the addresses the recovery site publishes") {
		t.Errorf("the cut-over to 10.2.0.20, not the published 203.0.113.7, was not warned about: %v", rep.Warnings)
	}
	check := func(when string) {
		t.Helper()
		if out, err := s.http(cust, "GET", published, ""); err != nil || !strings.Contains(out, "hello from web") {
			t.Errorf("%s: customer -> %s: %q, %v", when, published, out, err)
		}
		var out string
		err := rig.Eventually(ctx, 10*time.Second, "office reaches db", func() (err error) {
			out, err = s.http(office, "GET", "http://10.2.0.10/", "")
			return err
		})
		if err != nil || !strings.Contains(out, "hello from db") {
			t.Errorf("%s: office -> db through the tunnel: %q, %v", when, out, err)
		}
		if tables, tunnels := netLeft(t, s); len(tables) != 1 || tunnels != 1 {
			t.Errorf("%s: tables %v, %d tunnel processes; want one of each", when, tables, tunnels)
		}
	}
	check("after the failover")
	restart(syscall.SIGKILL)
	check("after the server was killed and started again")

	if rep, r := s.runJob("failover", "cancel", "--plan", "shop"); r.code != 0 || rep.State != string(store.Succeeded) {
		t.Fatalf("cancel: exit %d %s: %s", r.code, rep.State, rep.Error)
	}
	if tables, tunnels := netLeft(t, s); len(tables) != 0 || tunnels != 0 {
		t.Errorf("after cancel: tables %v, %d tunnel processes", tables, tunnels)
	}
	if out, err := s.http(cust, "GET", published, ""); err == nil {
		t.Errorf("the published address answers after cancel: %q", out)
	}
	if out, err := s.http(office, "GET", "http://10.2.0.10/", ""); err == nil {
		t.Errorf("the office reaches the recovery network after cancel: %q", out)
	}
}
