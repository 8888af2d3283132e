package vnet

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func net24(name, cidr string) Network {
	p := netip.MustParsePrefix(cidr)
	return Network{Name: name, Subnet: p, Gateway: p.Addr().Next()}
}

func TestLabRecordsTopology(t *testing.T) {
	rec := &Recorder{}
	lab := NewLab(rec)
	lab.ID = "hvtest"
	if _, err := lab.AddSite("rec", []Network{net24("app", "10.2.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.AddEdge("edge"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect("edge", "rec"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"addns hvtest-rec", "forward hvtest-rec true",
		"bridge hvtest-rec/br-app", "addr hvtest-rec/br-app 10.2.0.1/24", "up hvtest-rec/br-app",
		"addns hvtest-edge",
		"veth hvtest-edge/to-rec hvtest-rec/edge ",
		"addr hvtest-edge/to-rec 169.254.0.5/30", "up hvtest-edge/to-rec",
		"addr hvtest-rec/edge 169.254.0.6/30", "up hvtest-rec/edge",
		"route hvtest-edge 10.2.0.0/24 via 169.254.0.6",
	}
	if !slices.Equal(rec.Calls, want) {
		t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(rec.Calls, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range rec.Calls {
		if strings.HasPrefix(c, "addr /") || strings.HasPrefix(c, "route  ") {
			t.Fatalf("root namespace configured: %s", c)
		}
	}
}

func TestLabRefusesOverlapAtEdge(t *testing.T) {
	lab := NewLab(&Recorder{})
	lab.AddSite("prod", []Network{net24("app", "10.3.0.0/24")})
	lab.AddSite("test", []Network{net24("apptest", "10.3.0.0/24")})
	lab.AddEdge("edge")
	if err := lab.Connect("edge", "prod"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect("edge", "test"); !errors.Is(err, ErrConflict) {
		t.Fatalf("edge routed a test copy of production: %v", err)
	}
}

func TestLabRejectsBadInput(t *testing.T) {
	lab := NewLab(&Recorder{})
	if _, err := lab.AddSite("Bad Name", nil); !errors.Is(err, ErrBadName) {
		t.Fatal(err)
	}
	lab.AddSite("a", []Network{net24("app", "10.4.0.0/24")})
	if _, err := lab.AddSite("b", []Network{net24("app", "10.5.0.0/24")}); !errors.Is(err, ErrBadName) {
		t.Fatalf("duplicate network name accepted: %v", err)
	}
	bad := Network{Name: "x", Subnet: netip.MustParsePrefix("10.6.0.0/24"), Gateway: netip.MustParseAddr("10.7.0.1")}
	if _, err := lab.AddSite("c", []Network{bad}); !errors.Is(err, ErrOutsideSubnet) {
		t.Fatal(err)
	}
}

func TestPlugNeverTouchesRoot(t *testing.T) {
	rec := &Recorder{}
	att := Attachment{NS: "hvx-rec", Bridge: "br-app", Network: net24("app", "10.8.0.0/24")}
	err := Plug(rec, att, "vhost", "", NIC{Name: "eth0", Addr: netip.MustParsePrefix("10.8.0.9/24")}, true)
	if !errors.Is(err, ErrRootNS) {
		t.Fatalf("plugging the root namespace was allowed: %v", err)
	}
}

// TestPlugOneDefaultRoute: only the primary NIC adds a default route; a
// namespace holds one, so a second would fail the machine's start.
func TestPlugOneDefaultRoute(t *testing.T) {
	rec := &Recorder{}
	att := Attachment{NS: "hvx-rec", Bridge: "br-db", Network: net24("db", "10.9.0.0/24")}
	nic := NIC{Name: "eth1", Addr: netip.MustParsePrefix("10.9.0.9/24")}
	if err := Plug(rec, att, "vhost", "pid:7", nic, false); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.Calls {
		if strings.HasPrefix(c, "route ") {
			t.Fatalf("secondary NIC added a route: %s", c)
		}
	}
	if err := Plug(rec, att, "vhost", "pid:7", nic, true); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rec.Calls, "route pid:7 0.0.0.0/0 via 10.9.0.1") {
		t.Fatalf("primary NIC has no default route: %v", rec.Calls)
	}
}
