package vnet

import (
	"net"
	"net/netip"
)

// Ops is every host change vnet and the machine drivers make. A namespace is
// named by its /run/netns name, or "pid:N" for the namespace of process N.
// The empty name is the root namespace, which implementations refuse to give
// addresses or routes.
type Ops interface {
	AddNS(name string) error
	DelNS(name string) error
	AddBridge(ns, name string) error
	// AddVeth creates name in ns and its peer in peerNS with the given MAC
	// (nil: random).
	AddVeth(ns, name, peerNS, peer string, peerMAC net.HardwareAddr) error
	DelLink(ns, name string) error
	SetMaster(ns, link, bridge string) error
	AddAddr(ns, link string, addr netip.Prefix) error
	LinkUp(ns, link string) error
	AddRoute(ns string, dst netip.Prefix, gw netip.Addr) error
	SetForwarding(ns string, on bool) error
	// Announce sends a gratuitous ARP for addr from link.
	Announce(ns, link string, addr netip.Addr) error
}
