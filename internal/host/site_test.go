package host

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// runningStub is a machine that runs until stopped; the test plugs it into
// the host's table so the site counts as busy without booting anything.
type runningStub struct{ done chan struct{} }

func (s *runningStub) Spec() machine.Spec         { return machine.Spec{} }
func (s *runningStub) State() machine.State       { return machine.Running }
func (s *runningStub) Stop(context.Context) error { return nil }
func (s *runningStub) Done() <-chan struct{}      { return s.done }
func (s *runningStub) ConsoleLog() string         { return "" }

func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return string(out)
}

func newSiteHost(t *testing.T) (*Local, string) {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "ip")
	h, err := NewLocal(t.TempDir(), nil, vnet.Netlink{})
	if err != nil {
		t.Fatal(err)
	}
	edge := h.ID() + "-edge"
	if err := h.ops.AddNS(edge); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.RemoveSite(context.Background(), "rec")
		h.ops.DelNS(edge)
	})
	return h, edge
}

// TestEnsureSiteAddsNetworkUnderRunningMachines: a network added to the
// config is plugged into the live site; the namespace (and so every
// machine's link in it) is not remade.
func TestEnsureSiteAddsNetworkUnderRunningMachines(t *testing.T) {
	h, edge := newSiteHost(t)
	ctx := context.Background()
	a, b := vnettest.Net("a", "10.231.1.0/24"), vnettest.Net("b", "10.231.2.0/24")
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{a}, edge); err != nil {
		t.Fatal(err)
	}
	ns := h.SiteNS("rec")
	// A marker link only a remade namespace would lose.
	if err := h.ops.AddBridge(ns, "hvmark"); err != nil {
		t.Fatal(err)
	}
	h.instances[key("rec", "db")] = &runningStub{done: make(chan struct{})}
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{a, b}, edge); err != nil {
		t.Fatal(err)
	}
	links := ip(t, "-n", ns, "-o", "link", "show")
	for _, l := range []string{"hvmark", "br-a", "br-b"} {
		if !strings.Contains(links, l+":") && !strings.Contains(links, l+"@") {
			t.Errorf("link %s missing after adding network b: %s", l, links)
		}
	}
	if r := ip(t, "-n", edge, "route", "show", "10.231.2.0/24"); !strings.Contains(r, "via") {
		t.Errorf("the uplink has no route to the added network: %q", r)
	}
	if at, err := h.Attachment("b"); err != nil || at.NS != ns {
		t.Errorf("attachment of b = %+v, %v", at, err)
	}
	// A config that lacks a only adds nothing: a stays for whoever uses it.
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{b}, edge); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Attachment("a"); err != nil {
		t.Errorf("network a dropped from a live site: %v", err)
	}
}

// TestEnsureSiteRefusesToRemakeBusySite: a changed subnet would need the
// namespace remade; with a machine on it the host refuses and names it,
// and remakes the site once nothing runs there.
func TestEnsureSiteRefusesToRemakeBusySite(t *testing.T) {
	h, edge := newSiteHost(t)
	ctx := context.Background()
	a := vnettest.Net("a", "10.232.1.0/24")
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{a}, edge); err != nil {
		t.Fatal(err)
	}
	ns := h.SiteNS("rec")
	if err := h.ops.AddBridge(ns, "hvmark"); err != nil {
		t.Fatal(err)
	}
	stub := &runningStub{done: make(chan struct{})}
	h.instances[key("rec", "web")] = stub
	moved := vnettest.Net("a", "10.232.9.0/24")
	err := h.EnsureSite(ctx, "rec", []vnet.Network{moved}, edge)
	if !errors.Is(err, ErrSiteBusy) || !strings.Contains(err.Error(), "web") || !strings.Contains(err.Error(), "a") {
		t.Fatalf("EnsureSite with a changed subnet under a running machine = %v, want ErrSiteBusy naming web", err)
	}
	if links := ip(t, "-n", ns, "-o", "link", "show"); !strings.Contains(links, "hvmark") {
		t.Fatalf("site remade under a running machine: %s", links)
	}
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{a}, "other"); !errors.Is(err, ErrSiteBusy) {
		t.Fatalf("EnsureSite with another uplink under a running machine = %v, want ErrSiteBusy", err)
	}
	close(stub.done)
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{moved}, edge); err != nil {
		t.Fatal(err)
	}
	if at, err := h.Attachment("a"); err != nil || at.Network.Subnet != moved.Subnet {
		t.Errorf("after the machine stopped the site has %+v, %v; want the new subnet", at, err)
	}
}
