// Package nat publishes services of a recovery site on the recovery host's
// own addresses with nftables (github.com/google/nftables over netlink, no
// iptables or nft binary): DNAT in, SNAT out, one table per site, named
// hv… like every other thing Haven makes on a host.
//
// A table is always written whole in one netlink batch (add, delete, add
// again with every chain and rule), so applying a table twice converges
// and a crash leaves the old table or the new one, never half of one.
package nat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ErrBadRule marks a rule that cannot be installed (IPv6, unknown
// protocol, missing address).
var ErrBadRule = errors.New("nat: bad rule")

// Rule publishes To (a machine's address and port) at On (an address
// of the host and its port).
type Rule struct {
	Proto string         `json:"proto"` // tcp or udp
	On    netip.AddrPort `json:"on"`
	To    netip.AddrPort `json:"to"`
}

// Table is one site's publishing.
type Table struct {
	// NS is the namespace the host's addresses are in ("" = this
	// process's own): where customers' packets arrive.
	NS   string
	Name string
	// SiteLink is the host's end of the link to the site: traffic to it
	// is not source-translated (the host and its probes talk to the
	// machines as they are).
	SiteLink string
	Rules    []Rule
}

// Check refuses what Apply cannot install.
func (r Rule) Check() error {
	switch {
	case r.Proto != "tcp" && r.Proto != "udp":
		return fmt.Errorf("%w: protocol %q: want tcp or udp", ErrBadRule, r.Proto)
	case !r.On.IsValid() || !r.To.IsValid() || r.On.Port() == 0 || r.To.Port() == 0:
		return fmt.Errorf("%w: %s -> %s: address and port needed on both sides", ErrBadRule, r.On, r.To)
	case !r.On.Addr().Is4() || !r.To.Addr().Is4():
		return fmt.Errorf("%w: %s -> %s: only IPv4 is published", ErrBadRule, r.On, r.To)
	}
	return nil
}

func conn(ns string) (*nftables.Conn, func(), error) {
	if ns == "" {
		c, err := nftables.New()
		return c, func() {}, err
	}
	h, err := netns.GetFromName(ns)
	if err != nil {
		return nil, nil, fmt.Errorf("nat: netns %q: %w", ns, err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(h)))
	if err != nil {
		h.Close()
		return nil, nil, err
	}
	return c, func() { h.Close() }, nil
}

// Apply makes the table exactly t (removing rules it no longer has); a
// table without rules is deleted.
func Apply(t Table) error {
	if len(t.Rules) == 0 {
		return Delete(t.NS, t.Name)
	}
	for _, r := range t.Rules {
		if err := r.Check(); err != nil {
			return err
		}
	}
	c, done, err := conn(t.NS)
	if err != nil {
		return err
	}
	defer done()
	tab := &nftables.Table{Name: t.Name, Family: nftables.TableFamilyIPv4}
	c.AddTable(tab) // so the delete below never fails on a missing table
	c.DelTable(tab)
	c.AddTable(tab)
	chain := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: tab, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio})
	}
	pre := chain("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := chain("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := chain("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	snat := map[netip.Addr]netip.Addr{}
	for _, r := range t.Rules {
		for _, ch := range []*nftables.Chain{pre, out} {
			c.AddRule(&nftables.Rule{Table: tab, Chain: ch, Exprs: dnat(r)})
		}
		if _, dup := snat[r.To.Addr()]; !dup {
			snat[r.To.Addr()] = r.On.Addr()
			c.AddRule(&nftables.Rule{Table: tab, Chain: post, Exprs: snatExprs(r.To.Addr(), r.On.Addr(), t.SiteLink)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nat: table %s in %q: %w", t.Name, t.NS, err)
	}
	return nil
}

func proto(p string) byte {
	if p == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// dnat: ip daddr On, l4proto, th dport On.port -> dnat to To.
func dnat(r Rule) []expr.Any {
	on, to := r.On.Addr().As4(), r.To.Addr().As4()
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: on[:]},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto(r.Proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: port(r.On.Port())},
		&expr.Immediate{Register: 1, Data: to[:]},
		&expr.Immediate{Register: 2, Data: port(r.To.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// snatExprs: ip saddr machine, oifname != siteLink -> snat to pub, so
// what the machine sends out leaves from the address customers know.
func snatExprs(machine, pub netip.Addr, siteLink string) []expr.Any {
	m, p := machine.As4(), pub.As4()
	e := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m[:]},
	}
	if siteLink != "" {
		e = append(e, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(siteLink)})
	}
	return append(e, &expr.Immediate{Register: 1, Data: p[:]},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1})
}

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// ifname is an interface name as the kernel compares it (IFNAMSIZ, NUL
// padded).
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

// Delete removes a table; a missing table or namespace is fine.
func Delete(ns, name string) error {
	c, done, err := conn(ns)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer done()
	tab := &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
	c.AddTable(tab)
	c.DelTable(tab)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nat: delete table %s in %q: %w", name, ns, err)
	}
	return nil
}

// List names the IPv4 tables in ns whose name starts with prefix.
func List(ns, prefix string) ([]string, error) {
	c, done, err := conn(ns)
	if err != nil {
		return nil, err
	}
	defer done()
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil, fmt.Errorf("nat: list tables in %q: %w", ns, err)
	}
	var out []string
	for _, t := range ts {
		if strings.HasPrefix(t.Name, prefix) {
			out = append(out, t.Name)
		}
	}
	return out, nil
}
