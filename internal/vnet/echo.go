package vnet

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Echo is Ops that shows each host change as the iproute2 command that
// makes it, then makes it with Ops. The demo shows its user every change it
// makes on their behalf this way, so each can be repeated by hand.
type Echo struct {
	Ops  Ops
	Show func(cmd string)
}

var _ Ops = Echo{}

// ipIn is `ip` acting in namespace ns.
func ipIn(ns string) string {
	if pid, ok := strings.CutPrefix(ns, "pid:"); ok {
		return "nsenter -t " + pid + " -n ip"
	}
	if ns == "" {
		return "ip"
	}
	return "ip -n " + ns
}

// execIn runs a program in namespace ns.
func execIn(ns string) string {
	if pid, ok := strings.CutPrefix(ns, "pid:"); ok {
		return "nsenter -t " + pid + " -n "
	}
	if ns == "" {
		return ""
	}
	return "ip netns exec " + ns + " "
}

func (e Echo) show(format string, args ...any) { e.Show(fmt.Sprintf(format, args...)) }

func (e Echo) AddNS(name string) error {
	e.show("ip netns add %s", name)
	e.show("ip -n %s link set lo up", name)
	return e.Ops.AddNS(name)
}

func (e Echo) DelNS(name string) error {
	e.show("ip netns del %s", name)
	return e.Ops.DelNS(name)
}

func (e Echo) AddBridge(ns, name string) error {
	e.show("%s link add %s type bridge", ipIn(ns), name)
	return e.Ops.AddBridge(ns, name)
}

func (e Echo) AddVeth(ns, name, peerNS, peer string, peerMAC net.HardwareAddr) error {
	cmd := fmt.Sprintf("%s link add %s type veth peer name %s", ipIn(ns), name, peer)
	if peerMAC != nil {
		cmd += " address " + peerMAC.String()
	}
	if pid, ok := strings.CutPrefix(peerNS, "pid:"); ok {
		cmd += " netns " + pid
	} else if peerNS != "" {
		cmd += " netns " + peerNS
	}
	e.Show(cmd)
	return e.Ops.AddVeth(ns, name, peerNS, peer, peerMAC)
}

func (e Echo) DelLink(ns, name string) error {
	e.show("%s link del %s", ipIn(ns), name)
	return e.Ops.DelLink(ns, name)
}

func (e Echo) SetMaster(ns, link, bridge string) error {
	e.show("%s link set %s master %s", ipIn(ns), link, bridge)
	return e.Ops.SetMaster(ns, link, bridge)
}

func (e Echo) AddAddr(ns, link string, addr netip.Prefix) error {
	e.show("%s addr add %s dev %s", ipIn(ns), addr, link)
	return e.Ops.AddAddr(ns, link, addr)
}

func (e Echo) LinkUp(ns, link string) error {
	e.show("%s link set %s up", ipIn(ns), link)
	return e.Ops.LinkUp(ns, link)
}

func (e Echo) AddRoute(ns string, dst netip.Prefix, gw netip.Addr) error {
	e.show("%s route add %s via %s", ipIn(ns), dst, gw)
	return e.Ops.AddRoute(ns, dst, gw)
}

func (e Echo) SetForwarding(ns string, on bool) error {
	v := 0
	if on {
		v = 1
	}
	e.show("%ssysctl -qw net.ipv4.ip_forward=%d", execIn(ns), v)
	return e.Ops.SetForwarding(ns, on)
}

func (e Echo) Announce(ns, link string, addr netip.Addr) error {
	e.show("%sarping -c 1 -U -I %s %s", execIn(ns), link, addr)
	return e.Ops.Announce(ns, link, addr)
}
