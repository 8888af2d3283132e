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

// Plug connects nic, in namespace peerNS, to the attachment's bridge
// through a veth (hostLink is the bridge side), addresses it and announces
// the address with a gratuitous ARP. Only the NIC marked primary gets
// the default route via its network's gateway: a namespace has one, and a
// second NIC's subnet is reached by its connected route.
func Plug(ops Ops, a Attachment, hostLink, peerNS string, nic NIC, primary bool) error {
	steps := []func() error{
		func() error { return ops.AddVeth(a.NS, hostLink, peerNS, nic.Name, nic.MAC) },
		func() error { return ops.SetMaster(a.NS, hostLink, a.Bridge) },
		func() error { return ops.LinkUp(a.NS, hostLink) },
		func() error { return ops.LinkUp(peerNS, "lo") },
		func() error { return ops.AddAddr(peerNS, nic.Name, nic.Addr) },
		func() error { return ops.LinkUp(peerNS, nic.Name) },
	}
	if primary {
		steps = append(steps, func() error {
			return ops.AddRoute(peerNS, defaultRoute(nic.Addr), a.Network.Gateway)
		})
	}
	steps = append(steps, func() error { return ops.Announce(peerNS, nic.Name, nic.Addr.Addr()) })
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
