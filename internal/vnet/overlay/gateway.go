package overlay

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Every host's site bridge holds the network's gateway address (its
// machines' way out, and where the host probes them from), so on the
// overlay one address sits behind several MACs. The gateway is kept
// local, a distributed gateway: ARP for the gateway never crosses a VXLAN
// device, and neither does ARP that would teach a machine another host's
// MAC for it, so each machine resolves the gateway of the host it runs
// on, and replies to a host's probes go back to that host. Without this a
// machine's ARP cache follows whichever host answered last.
//
// A host's site must still resolve machines on other hosts: the edge
// host's site sends them the outside's answers, and a host routing
// between two subnets sends to a machine of the other subnet wherever it
// runs. Its request leaves through the VXLAN device as an ARP probe
// (RFC 5227: sender address 0.0.0.0): the machine answers it (to the
// requesting bridge's MAC) but, by the same RFC, takes nothing from it
// into its cache, so its gateway stays the local one.

// filterTable is the bridge-family table, one per site namespace.
const filterTable = "hvoverlay"

// keepGatewaysLocal makes the site's table: for each network's device,
// drop ARP whose target is the gateway leaving through it (a local
// machine asking), and ARP whose sender is the gateway crossing it either
// way (a gateway answering or announcing), except the gateway's own
// requests for other addresses, which leave as probes; ARP for the
// gateway arriving through it is not answered by the local bridge.
func keepGatewaysLocal(siteNS string, nets []Network) error {
	h, err := netns.GetFromName(siteNS)
	if err != nil {
		return fmt.Errorf("overlay: netns %s: %w", siteNS, err)
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		return err
	}
	tab := &nftables.Table{Name: filterTable, Family: nftables.TableFamilyBridge}
	c.AddTable(tab) // so the delete below never fails on a missing table
	c.DelTable(tab)
	if len(nets) > 0 {
		c.AddTable(tab)
		accept := nftables.ChainPolicyAccept
		chain := func(name string, hook *nftables.ChainHook) *nftables.Chain {
			return c.AddChain(&nftables.Chain{Name: name, Table: tab, Type: nftables.ChainTypeFilter,
				Hooknum: hook, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		}
		fwd, in, out := chain("forward", nftables.ChainHookForward), chain("input", nftables.ChainHookInput), chain("output", nftables.ChainHookOutput)
		for _, n := range nets {
			if !n.Gateway.Is4() {
				continue
			}
			dev := DeviceName(n.Name)
			// Rules of a chain run in order: the probe rule accepts
			// before the last drop sees the gateway as sender.
			for _, r := range []struct {
				ch    *nftables.Chain
				exprs []expr.Any
			}{
				{fwd, dropARP(expr.MetaKeyOIFNAME, dev, arpTarget, n.Gateway)},
				{fwd, dropARP(expr.MetaKeyOIFNAME, dev, arpSender, n.Gateway)},
				{fwd, dropARP(expr.MetaKeyIIFNAME, dev, arpSender, n.Gateway)},
				{in, dropARP(expr.MetaKeyIIFNAME, dev, arpTarget, n.Gateway)},
				{in, dropARP(expr.MetaKeyIIFNAME, dev, arpSender, n.Gateway)},
				{out, probeARP(dev, n.Gateway)},
				{out, dropARP(expr.MetaKeyOIFNAME, dev, arpSender, n.Gateway)},
			} {
				c.AddRule(&nftables.Rule{Table: tab, Chain: r.ch, Exprs: r.exprs})
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("overlay: gateway filter in %s: %w", siteNS, err)
	}
	return nil
}

// Offsets in an Ethernet ARP packet: the operation, and the sender's and
// target's IPv4 addresses.
const (
	arpOp     = 6
	arpSender = 14
	arpTarget = 24
)

// arpFrom matches ARP through device dev (dir: in or out) whose IPv4
// address at offset is addr.
func arpFrom(dir expr.MetaKey, dev string, offset uint32, addr netip.Addr) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, dev)
	return []expr.Any{
		&expr.Meta{Key: dir, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, unix.ETH_P_ARP)},
		arpField(offset, 4),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr.AsSlice()},
	}
}

func arpField(offset, n uint32) *expr.Payload {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: n}
}

func dropARP(dir expr.MetaKey, dev string, offset uint32, gw netip.Addr) []expr.Any {
	return append(arpFrom(dir, dev, offset, gw), &expr.Verdict{Kind: expr.VerdictDrop})
}

// probeARP turns the gateway's request for another address leaving
// through dev into an ARP probe: sender address 0.0.0.0.
func probeARP(dev string, gw netip.Addr) []expr.Any {
	return append(arpFrom(expr.MetaKeyOIFNAME, dev, arpSender, gw),
		arpField(arpOp, 2),
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 1}}, // request
		arpField(arpTarget, 4),
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: gw.AsSlice()}, // not the gateway's own announcement
		&expr.Immediate{Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader,
			Offset: arpSender, Len: 4, CsumType: expr.CsumTypeNone},
		&expr.Verdict{Kind: expr.VerdictAccept},
	)
}
