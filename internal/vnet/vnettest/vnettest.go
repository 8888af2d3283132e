// Package vnettest gives tests a real lab of namespaces that is removed in
// t.Cleanup, on success and on failure alike.
package vnettest

import (
	"net/netip"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// NewLab returns an empty real lab; it needs root.
func NewLab(t testing.TB) *vnet.Lab {
	t.Helper()
	testenv.RequireRoot(t)
	lab := vnet.NewLab(vnet.Netlink{})
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("lab cleanup: %v", err)
		}
	})
	return lab
}

// Net is a shorthand for a network on subnet cidr with gateway .1.
func Net(name, cidr string) vnet.Network {
	p := netip.MustParsePrefix(cidr)
	return vnet.Network{Name: name, Subnet: p, Gateway: p.Addr().Next()}
}

// Host makes a bare namespace named <lab>-<name> with one NIC plugged into
// network: a stand-in for a machine in vnet's own tests.
func Host(t testing.TB, lab *vnet.Lab, name, network, addr string) string {
	t.Helper()
	ops := vnet.Netlink{}
	ns := lab.ID + "-" + name
	if err := ops.AddNS(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.DelNS(ns) })
	att, err := lab.Attachment(network)
	if err != nil {
		t.Fatal(err)
	}
	nic := vnet.NIC{Name: "eth0", Network: network, Addr: netip.MustParsePrefix(addr), MAC: vnet.StableMAC(ns, "eth0")}
	if err := vnet.Plug(ops, att, "v"+name, ns, nic, true); err != nil {
		t.Fatal(err)
	}
	return ns
}
