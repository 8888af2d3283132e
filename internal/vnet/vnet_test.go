package vnet

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
)

func testNet() Network {
	return Network{Name: "app", Subnet: netip.MustParsePrefix("10.1.0.0/29"),
		Gateway: netip.MustParseAddr("10.1.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.1.0.2")}}
}

func TestStableMAC(t *testing.T) {
	a, b := StableMAC("web", "eth0"), StableMAC("web", "eth0")
	if a.String() != b.String() {
		t.Fatalf("not stable: %v %v", a, b)
	}
	if a.String() == StableMAC("web", "eth1").String() {
		t.Fatal("different NICs share a MAC")
	}
	if a[0]&0x02 == 0 || a[0]&0x01 != 0 {
		t.Fatalf("%v is not locally administered unicast", a)
	}
}

func TestAllocatorModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alloc.json")
	a, err := OpenAllocator(path)
	if err != nil {
		t.Fatal(err)
	}
	n := testNet()
	got, err := a.Assign(n, "web", "eth0", Request{Mode: Allocate})
	if err != nil || got.String() != "10.1.0.3/29" {
		t.Fatalf("allocate: %v %v (want .3: .1 gateway, .2 DNS)", got, err)
	}
	kept, err := a.Assign(n, "db", "eth0", Request{Mode: Keep, Addr: netip.MustParseAddr("10.1.0.5")})
	if err != nil || kept.String() != "10.1.0.5/29" {
		t.Fatalf("keep: %v %v", kept, err)
	}
	_, err = a.Assign(n, "x", "eth0", Request{Mode: Static, Addr: netip.MustParseAddr("10.1.0.3")})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "web/eth0") {
		t.Fatalf("conflict not refused clearly: %v", err)
	}
	_, err = a.Assign(n, "x", "eth0", Request{Mode: Keep, Addr: netip.MustParseAddr("192.168.1.5")})
	if !errors.Is(err, ErrOutsideSubnet) {
		t.Fatalf("outside subnet: %v", err)
	}
	_, err = a.Assign(n, "x", "eth0", Request{Mode: Static, Addr: n.Gateway})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("gateway not reserved: %v", err)
	}
}

func TestAllocatorPersistsAndExhausts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alloc.json")
	a, _ := OpenAllocator(path)
	n := testNet() // .3 .4 .5 .6 usable (.7 broadcast)
	for _, m := range []string{"a", "b", "c", "d"} {
		if _, err := a.Assign(n, m, "eth0", Request{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Assign(n, "e", "eth0", Request{}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("want exhausted, got %v", err)
	}
	b, err := OpenAllocator(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Assign(n, "c", "eth0", Request{})
	if err != nil || got.Addr().String() != "10.1.0.5" {
		t.Fatalf("reopened allocator gave c %v %v, want its recorded 10.1.0.5", got, err)
	}
	if err := b.Release("app", "a", "eth0"); err != nil {
		t.Fatal(err)
	}
	got, _ = b.Assign(n, "e", "eth0", Request{})
	if got.Addr().String() != "10.1.0.3" {
		t.Fatalf("released address not reused: %v", got)
	}
}

func TestMapping(t *testing.T) {
	m := Mapping{Recovery: map[string]string{"prod": "rec"}, Test: map[string]string{"prod": "rec-test"}}
	if n, _ := m.Resolve("prod", false); n != "rec" {
		t.Fatal(n)
	}
	if n, _ := m.Resolve("prod", true); n != "rec-test" {
		t.Fatal(n)
	}
	if _, err := m.Resolve("other", true); !errors.Is(err, ErrUnknown) {
		t.Fatal(err)
	}
}

func TestGARPFrame(t *testing.T) {
	f := garpFrame(StableMAC("m", "eth0"), netip.MustParseAddr("10.0.0.7"))
	if len(f) != 42 || f[12] != 0x08 || f[13] != 0x06 {
		t.Fatalf("bad frame % x", f)
	}
	if string(f[28:32]) != string(f[38:42]) {
		t.Fatal("sender and target IP differ")
	}
}
