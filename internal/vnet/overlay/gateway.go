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
// local, a distributed gateway: ARP for or from it never crosses a VXLAN
// device, so each machine resolves the gateway of the host it runs on,
// and replies to a host's probes go back to that host. Without this a
// machine's ARP cache follows whichever host answered last.

// filterTable is the bridge-family table, one per site namespace.
const filterTable = "hvoverlay"

// keepGatewaysLocal makes the site's table: for each network's device,
// drop ARP whose target is the gateway leaving through it (a local
// machine asking), and ARP whose sender is the gateway crossing it either
// way (a gateway answering or announcing); ARP for the gateway arriving
// through it is not answered by the local bridge.
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
			for _, r := range []struct {
				ch     *nftables.Chain
				dir    expr.MetaKey
				offset uint32
			}{
				{fwd, expr.MetaKeyOIFNAME, arpTarget},
				{fwd, expr.MetaKeyOIFNAME, arpSender},
				{fwd, expr.MetaKeyIIFNAME, arpSender},
				{in, expr.MetaKeyIIFNAME, arpTarget},
				{in, expr.MetaKeyIIFNAME, arpSender},
				{out, expr.MetaKeyOIFNAME, arpSender},
			} {
				c.AddRule(&nftables.Rule{Table: tab, Chain: r.ch, Exprs: dropARP(r.dir, dev, r.offset, n.Gateway)})
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("overlay: gateway filter in %s: %w", siteNS, err)
	}
	return nil
}

// Offsets of the IPv4 addresses in an Ethernet ARP packet.
const (
	arpSender = 14
	arpTarget = 24
)

func dropARP(dir expr.MetaKey, dev string, offset uint32, gw netip.Addr) []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, dev)
	gwb := gw.As4()
	return []expr.Any{
		&expr.Meta{Key: dir, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, unix.ETH_P_ARP)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: gwb[:]},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}
