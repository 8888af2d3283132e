package vnet

import (
	"net"
	"net/netip"
)

// NIC is one machine network interface as the drivers see it: the network
// it plugs into, its address there and its stable MAC.
type NIC struct {
	Name    string           // name inside the machine, e.g. eth0
	Network string           // recovery network name
	Addr    netip.Prefix     // assigned address with prefix length
	MAC     net.HardwareAddr // nil: StableMAC(machine, Name)
}

// Plug connects interface peerName in namespace peerNS to the attachment's
// bridge through a veth (hostLink is the bridge side), addresses it, routes
// by the network's gateway and announces the address with a gratuitous ARP.
func Plug(ops Ops, a Attachment, hostLink, peerNS, peerName string, mac net.HardwareAddr, addr netip.Prefix) error {
	steps := []func() error{
		func() error { return ops.AddVeth(a.NS, hostLink, peerNS, peerName, mac) },
		func() error { return ops.SetMaster(a.NS, hostLink, a.Bridge) },
		func() error { return ops.LinkUp(a.NS, hostLink) },
		func() error { return ops.LinkUp(peerNS, "lo") },
		func() error { return ops.AddAddr(peerNS, peerName, addr) },
		func() error { return ops.LinkUp(peerNS, peerName) },
		func() error { return ops.AddRoute(peerNS, defaultRoute(addr), a.Network.Gateway) },
		func() error { return ops.Announce(peerNS, peerName, addr.Addr()) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func defaultRoute(a netip.Prefix) netip.Prefix {
	if a.Addr().Is4() {
		return netip.MustParsePrefix("0.0.0.0/0")
	}
	return netip.MustParsePrefix("::/0")
}
