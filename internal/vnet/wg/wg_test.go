package wg

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

type tworld struct {
	id, office, host, site string
	siteCfg, officeCfg     Config
	dir                    string
}

func mustKey(t *testing.T, dir, name string) (file, pub string) {
	priv := GenerateKey()
	pub, err := PublicKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, name+".key")
	if err := os.WriteFile(file, []byte(priv+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, pub
}

// newTunnelWorld: office -- host (uplink) -- site, and the two ends'
// configs: the site listens on the host's address, the office calls it.
func newTunnelWorld(t *testing.T) *tworld {
	testenv.RequireRoot(t)
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		testenv.Missing(t, "/dev/net/tun: %v", err)
	}
	ops := vnet.Netlink{}
	id := vnet.NewID()
	w := &tworld{id: id, office: id + "-office", host: id + "-host", site: id + "-site", dir: t.TempDir()}
	for _, ns := range []string{w.office, w.host, w.site} {
		if err := ops.AddNS(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ops.DelNS(ns) })
	}
	p := netip.MustParsePrefix
	for i, err := range []error{
		ops.AddVeth(w.office, "eth0", w.host, "hvoff", nil),
		ops.AddAddr(w.office, "eth0", p("198.51.100.2/24")),
		ops.LinkUp(w.office, "eth0"),
		ops.AddAddr(w.host, "hvoff", p("198.51.100.1/24")),
		ops.LinkUp(w.host, "hvoff"),
		ops.AddBridge(w.site, "br-app"),
		ops.AddAddr(w.site, "br-app", p("10.1.0.1/24")),
		ops.AddAddr(w.site, "br-app", p("10.1.0.10/24")), // the "database"
		ops.LinkUp(w.site, "br-app"),
	} {
		if err != nil {
			t.Fatalf("topology step %d: %v", i, err)
		}
	}
	siteKey, sitePub := mustKey(t, w.dir, "site")
	officeKey, officePub := mustKey(t, w.dir, "office")
	w.siteCfg = Config{Name: "office", PrivateKeyFile: siteKey, ListenPort: 51820,
		Peers: []Peer{{PublicKey: officePub, AllowedIPs: []netip.Prefix{p("192.168.50.0/24")}}}}
	w.officeCfg = Config{Name: "site", PrivateKeyFile: officeKey, ListenPort: 51821, Address: p("192.168.50.1/24"), Userspace: true,
		Peers: []Peer{{PublicKey: sitePub, Endpoint: "198.51.100.1:51820", AllowedIPs: []netip.Prefix{p("10.1.0.0/24")}, Keepalive: time.Second}}}
	return w
}

func serveName(t *testing.T, ns, addr, name string) {
	ln, err := vnet.Listen(ns, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func fetch(ns, url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, n, a string) (net.Conn, error) { return vnet.DialContext(ctx, ns, n, a) }}}
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// eventuallyFetch gives the handshake a few seconds.
func eventuallyFetch(ns, url string) (string, error) {
	var body string
	var err error
	for i := 0; i < 20; i++ {
		if body, err = fetch(ns, url); err == nil {
			return body, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return body, err
}

// tunnelProcs counts running tunnel processes whose records are under
// dir (other tests and servers may run tunnels meanwhile).
func tunnelProcs(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	dirs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range dirs {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), childEnv+"="+dir) {
			n++
		}
	}
	return n
}

// TestTunnelReachesSiteAtPrimaryAddress: a client in the office reaches
// the site's machine at its own address (10.1.0.10) through userspace
// WireGuard; a second Start is a no-op; Stop takes the tunnel and its
// interface away, and with them the office's reach.
func TestTunnelReachesSiteAtPrimaryAddress(t *testing.T) {
	w := newTunnelWorld(t)
	serveName(t, w.site, "10.1.0.10:80", "db")
	siteDir, officeDir := filepath.Join(w.dir, "site"), filepath.Join(w.dir, "office")
	if err := Start(siteDir, w.site, w.host, w.siteCfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { StopAll(siteDir) })
	if err := Start(officeDir, w.office, w.office, w.officeCfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { StopAll(officeDir) })
	body, err := eventuallyFetch(w.office, "http://10.1.0.10/")
	if err != nil || body != "db" {
		t.Fatalf("office -> 10.1.0.10 through the tunnel: %q, %v (site log: %s)", body, err, readLog(siteDir, "office"))
	}
	// The site's end chose kernel WireGuard or, without it in the
	// kernel (this machine), the userspace process; never an error.
	if b, err := os.ReadFile(filepath.Join(siteDir, "office.kernel-error")); err == nil {
		t.Errorf("kernel WireGuard failed other than by its absence: %s", b)
	}
	want := 2
	if kernelUp(siteDir, "office") {
		want = 1
		t.Log("site end: kernel WireGuard")
	} else {
		t.Log("site end: userspace WireGuard (no WireGuard in this kernel)")
	}
	if n := tunnelProcs(t, w.dir); n != want {
		t.Errorf("%d tunnel processes of this test run, want %d", n, want)
	}
	o, _ := owner(siteDir, "office")
	if err := Start(siteDir, w.site, w.host, w.siteCfg); err != nil {
		t.Fatal(err)
	}
	if o2, _ := owner(siteDir, "office"); o2 != o {
		t.Errorf("a second Start replaced the running tunnel (%v -> %v)", o, o2)
	}
	if n := tunnelProcs(t, w.dir); n != want {
		t.Errorf("after a second Start: %d tunnel processes, want %d", n, want)
	}
	// The UDP socket is the host's: nothing listens in the site.
	if out, _ := exec.Command("ip", "netns", "exec", w.host, "ss", "-uln").CombinedOutput(); !strings.Contains(string(out), ":51820") {
		t.Errorf("no UDP socket on :51820 in the uplink's namespace:\n%s", out)
	}
	if err := StopAll(siteDir); err != nil {
		t.Fatal(err)
	}
	if links, _ := exec.Command("ip", "-n", w.site, "link", "show", "wg-office").CombinedOutput(); !strings.Contains(string(links), "does not exist") {
		t.Errorf("the tunnel's interface outlived it: %s", links)
	}
	if _, err := fetch(w.office, "http://10.1.0.10/"); err == nil {
		t.Error("the office still reaches the site after the tunnel stopped")
	}
	if err := StopAll(officeDir); err != nil {
		t.Fatal(err)
	}
	if n := tunnelProcs(t, w.dir); n != 0 {
		t.Errorf("%d tunnel processes left", n)
	}
}

// TestTunnelEndsWithItsNamespace: a tunnel whose site namespace is
// deleted behind its back (a crashed server's site removed by cleanup)
// exits by itself instead of keeping the namespace alive.
func TestTunnelEndsWithItsNamespace(t *testing.T) {
	w := newTunnelWorld(t)
	dir := filepath.Join(w.dir, "site")
	if err := Start(dir, w.site, w.host, w.siteCfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { StopAll(dir) })
	if err := (vnet.Netlink{}).DelNS(w.site); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for Running(dir, "office") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if Running(dir, "office") {
		t.Fatal("the tunnel outlived its site's namespace")
	}
	if n := tunnelProcs(t, w.dir); n != 0 {
		t.Errorf("%d tunnel processes left", n)
	}
}

func TestConfigCheck(t *testing.T) {
	_, pub := mustKey(t, t.TempDir(), "x")
	good := Config{Name: "office", PrivateKeyFile: "/k", Peers: []Peer{{PublicKey: pub, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("192.168.50.0/24")}}}}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{Name: "Office!", PrivateKeyFile: "/k", Peers: good.Peers},
		{Name: "office", Peers: good.Peers},
		{Name: "office", PrivateKeyFile: "/k"},
		{Name: "office", PrivateKeyFile: "/k", Peers: []Peer{{PublicKey: "short", AllowedIPs: good.Peers[0].AllowedIPs}}},
		{Name: "office", PrivateKeyFile: "/k", Peers: []Peer{{PublicKey: pub}}},
	} {
		if err := c.Check(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func readLog(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
	return string(b)
}
