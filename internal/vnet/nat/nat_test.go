package nat

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// world is inet (a customer) -- host (the public address) -- site (a
// machine's address), each a namespace made here.
type world struct {
	id, inet, host, site string
}

func newWorld(t *testing.T) world {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "nft")
	ops := vnet.Netlink{}
	id := vnet.NewID()
	w := world{id: id, inet: id + "-inet", host: id + "-host", site: id + "-site"}
	for _, ns := range []string{w.inet, w.host, w.site} {
		if err := ops.AddNS(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ops.DelNS(ns) })
	}
	p := netip.MustParsePrefix
	steps := []error{
		ops.AddVeth(w.inet, "eth0", w.host, "hvpub", nil),
		ops.AddAddr(w.inet, "eth0", p("203.0.113.100/24")),
		ops.LinkUp(w.inet, "eth0"),
		ops.AddAddr(w.host, "hvpub", p("203.0.113.7/24")),
		ops.LinkUp(w.host, "hvpub"),
		ops.AddVeth(w.host, "hvsite", w.site, "uplink", nil),
		ops.AddAddr(w.host, "hvsite", p("169.254.9.1/30")),
		ops.LinkUp(w.host, "hvsite"),
		ops.AddAddr(w.site, "uplink", p("169.254.9.2/30")),
		ops.LinkUp(w.site, "uplink"),
		ops.AddRoute(w.host, p("10.77.0.0/24"), netip.MustParseAddr("169.254.9.2")),
		ops.AddRoute(w.site, p("0.0.0.0/0"), netip.MustParseAddr("169.254.9.1")),
		ops.SetForwarding(w.host, true),
		ops.AddBridge(w.site, "br-app"),
		ops.AddAddr(w.site, "br-app", p("10.77.0.20/24")),
		ops.LinkUp(w.site, "br-app"),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("topology step %d: %v", i, err)
		}
	}
	return w
}

// serve answers every request with the address it came from.
func serve(t *testing.T, ns, addr string) {
	ln, err := vnet.Listen(ns, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.RemoteAddr)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func get(ns, url string) (string, error) { return getFrom(ns, nil, url) }

// getFrom sends from a given local address (the site namespace has
// several; a machine has one).
func getFrom(ns string, local net.Addr, url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	dial := func(ctx context.Context, n, a string) (c net.Conn, err error) {
		err = vnet.Do(ns, func() error {
			c, err = (&net.Dialer{LocalAddr: local}).DialContext(ctx, n, a)
			return err
		})
		return c, err
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial}}
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func nftList(t *testing.T, ns, table string) string {
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "ip", table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table %s: %v: %s", table, err, out)
	}
	return string(out)
}

// TestPublishRealHTTP: a customer reaches the machine at the public
// address (DNAT), the machine's own connections leave from the public
// address (SNAT), applying again changes nothing, and Delete removes the
// table so the address answers no more.
func TestPublishRealHTTP(t *testing.T) {
	w := newWorld(t)
	serve(t, w.site, "10.77.0.20:8080")
	serve(t, w.inet, "203.0.113.100:9000")
	tab := Table{NS: w.host, Name: w.id + "-rec", SiteLink: "hvsite", Rules: []Rule{
		{Proto: "tcp", On: netip.MustParseAddrPort("203.0.113.7:443"), To: netip.MustParseAddrPort("10.77.0.20:8080")},
	}}
	if _, err := get(w.inet, "http://203.0.113.7:443/"); err == nil {
		t.Fatal("the public address answered before anything was published")
	}
	if err := Apply(tab); err != nil {
		t.Fatal(err)
	}
	first := nftList(t, w.host, tab.Name)
	if err := Apply(tab); err != nil {
		t.Fatal(err)
	}
	if again := nftList(t, w.host, tab.Name); again != first {
		t.Errorf("applying the same table twice changed it:\n%s\nthen\n%s", first, again)
	}
	if n := strings.Count(first, "dnat to 10.77.0.20:8080"); n != 2 {
		t.Errorf("want 2 dnat rules (prerouting, output), got %d:\n%s", n, first)
	}
	body, err := get(w.inet, "http://203.0.113.7:443/")
	if err != nil {
		t.Fatalf("customer through the published address: %v", err)
	}
	if !strings.HasPrefix(body, "203.0.113.100:") {
		t.Errorf("the machine saw the customer as %q, want 203.0.113.100 (DNAT keeps the source)", body)
	}
	body, err = getFrom(w.site, &net.TCPAddr{IP: net.ParseIP("10.77.0.20")}, "http://203.0.113.100:9000/")
	if err != nil {
		t.Fatalf("machine to the internet: %v", err)
	}
	if !strings.HasPrefix(body, "203.0.113.7:") {
		t.Errorf("the internet saw the machine as %q, want the published 203.0.113.7 (SNAT)", body)
	}
	if got, err := List(w.host, w.id); err != nil || len(got) != 1 || got[0] != tab.Name {
		t.Errorf("List = %v, %v; want [%s]", got, err, tab.Name)
	}
	tab.Rules = nil // no rules: the table goes
	if err := Apply(tab); err != nil {
		t.Fatal(err)
	}
	if err := Delete(w.host, tab.Name); err != nil {
		t.Errorf("deleting a missing table: %v", err)
	}
	if got, _ := List(w.host, w.id); len(got) != 0 {
		t.Errorf("tables left: %v", got)
	}
	if _, err := get(w.inet, "http://203.0.113.7:443/"); err == nil {
		t.Error("the public address still answers after the table was deleted")
	}
	if err := Delete(w.id+"-gone", "hvx"); err != nil {
		t.Errorf("delete in a missing namespace: %v", err)
	}
}

func TestRuleCheck(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, r := range []Rule{
		{Proto: "sctp", On: ap("203.0.113.7:1"), To: ap("10.0.0.1:1")},
		{Proto: "tcp", On: ap("[2001:db8::1]:443"), To: ap("10.0.0.1:1")},
		{Proto: "tcp", To: ap("10.0.0.1:1")},
	} {
		if err := r.Check(); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}
