package vnet

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sync"
)

// Prefix starts the name of every namespace, link, loop device and mount
// Haven creates, so `haven site cleanup` can find what a crashed run left.
const Prefix = "hv"

// NewID returns Prefix plus a random suffix.
func NewID() string {
	b := make([]byte, 3)
	rand.Read(b)
	return Prefix + hex.EncodeToString(b)
}

var siteName = regexp.MustCompile(`^[a-z0-9]{1,8}$`)

// Lab is a set of sites and edges on one host, each a network namespace
// named <id>-<name>. Sites are connected to an edge only when asked; sites
// never route to each other.
type Lab struct {
	ID  string
	ops Ops

	mu       sync.Mutex
	sites    map[string]*Site
	edges    map[string]*edge
	networks map[string]Attachment
	transit  int
}

// Site is a namespace that routes for its networks (one bridge each, with
// the gateway address on it).
type Site struct {
	Name     string
	NS       string
	Networks []Network
}

type edge struct {
	ns     string
	routed []netip.Prefix
}

// Attachment is where a machine NIC plugs in: a bridge in a namespace.
type Attachment struct {
	NS      string
	Bridge  string
	Network Network
}

// NewLab starts an empty lab with a fresh ID.
func NewLab(ops Ops) *Lab {
	return &Lab{ID: NewID(), ops: ops, sites: map[string]*Site{},
		edges: map[string]*edge{}, networks: map[string]Attachment{}}
}

func (l *Lab) nsName(name string) string { return l.ID + "-" + name }

// AddSite creates the site's namespace and a bridge per network. Network
// names are unique across the lab; subnets may repeat in different sites
// (a test site mirrors production).
func (l *Lab) AddSite(name string, nets []Network) (*Site, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkSite(name, nets); err != nil {
		return nil, err
	}
	s := &Site{Name: name, NS: l.nsName(name), Networks: nets}
	if err := l.ops.AddNS(s.NS); err != nil {
		return nil, err
	}
	l.sites[name] = s
	if err := l.ops.SetForwarding(s.NS, true); err != nil {
		return nil, err
	}
	for _, n := range nets {
		if err := l.addBridge(s, n); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (l *Lab) checkSite(name string, nets []Network) error {
	if !siteName.MatchString(name) {
		return fmt.Errorf("%w: site %q (1-8 of a-z0-9)", ErrBadName, name)
	}
	if l.sites[name] != nil || l.edges[name] != nil {
		return fmt.Errorf("%w: %q already exists", ErrBadName, name)
	}
	seen := map[string]bool{}
	for _, n := range nets {
		if err := n.Validate(); err != nil {
			return err
		}
		if _, dup := l.networks[n.Name]; dup || seen[n.Name] {
			return fmt.Errorf("%w: network %q defined twice", ErrBadName, n.Name)
		}
		seen[n.Name] = true
	}
	return nil
}

func (l *Lab) addBridge(s *Site, n Network) error {
	br := "br-" + n.Name
	steps := []func() error{
		func() error { return l.ops.AddBridge(s.NS, br) },
		func() error { return l.ops.AddAddr(s.NS, br, n.GatewayPrefix()) },
		func() error { return l.ops.LinkUp(s.NS, br) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	l.networks[n.Name] = Attachment{NS: s.NS, Bridge: br, Network: n}
	return nil
}

// AddEdge creates an edge namespace: where DNS answers point and health
// probes run. It reaches only the sites connected to it.
func (l *Lab) AddEdge(name string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !siteName.MatchString(name) || l.sites[name] != nil || l.edges[name] != nil {
		return "", fmt.Errorf("%w: edge %q", ErrBadName, name)
	}
	ns := l.nsName(name)
	if err := l.ops.AddNS(ns); err != nil {
		return "", err
	}
	l.edges[name] = &edge{ns: ns}
	return ns, nil
}

// Connect links edge to site with a /30 transit link and routes the site's
// subnets from the edge. A subnet the edge already routes (an isolated test
// copy of production) is refused: that is what keeps test networks isolated.
func (l *Lab) Connect(edgeName, siteName string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, s := l.edges[edgeName], l.sites[siteName]
	if e == nil || s == nil {
		return fmt.Errorf("%w: edge %q or site %q", ErrUnknown, edgeName, siteName)
	}
	if err := e.overlaps(s); err != nil {
		return err
	}
	edgeIP, siteIP := l.transitPair()
	link := "to-" + s.Name
	if err := l.ops.AddVeth(e.ns, link, s.NS, "edge", nil); err != nil {
		return err
	}
	if err := l.linkUpAddr(e.ns, link, edgeIP); err != nil {
		return err
	}
	if err := l.linkUpAddr(s.NS, "edge", siteIP); err != nil {
		return err
	}
	for _, n := range s.Networks {
		if err := l.ops.AddRoute(e.ns, n.Subnet, siteIP.Addr()); err != nil {
			return err
		}
		e.routed = append(e.routed, n.Subnet)
	}
	return nil
}

func (e *edge) overlaps(s *Site) error {
	for _, n := range s.Networks {
		for _, r := range e.routed {
			if r.Overlaps(n.Subnet) {
				return fmt.Errorf("%w: edge already routes %v, site %s has %v", ErrConflict, r, s.Name, n.Subnet)
			}
		}
	}
	return nil
}

// transitPair returns the next /30 from 169.254.0.0/16: link-local, so it
// never collides with a customer subnet.
func (l *Lab) transitPair() (netip.Prefix, netip.Prefix) {
	l.transit++
	base := netip.AddrFrom4([4]byte{169, 254, byte(l.transit >> 6), byte(l.transit<<2) & 0xff})
	return netip.PrefixFrom(base.Next(), 30), netip.PrefixFrom(base.Next().Next(), 30)
}

func (l *Lab) linkUpAddr(ns, link string, p netip.Prefix) error {
	if err := l.ops.AddAddr(ns, link, p); err != nil {
		return err
	}
	return l.ops.LinkUp(ns, link)
}

// Attachment returns where a NIC on network plugs in.
func (l *Lab) Attachment(network string) (Attachment, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.networks[network]
	if !ok {
		return Attachment{}, fmt.Errorf("%w: %q", ErrUnknown, network)
	}
	return a, nil
}

// EdgeNS returns the namespace of an edge.
func (l *Lab) EdgeNS(name string) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.edges[name]; e != nil {
		return e.ns, nil
	}
	return "", fmt.Errorf("%w: edge %q", ErrUnknown, name)
}

// Close removes every namespace of the lab; links inside go with them.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, e := range l.edges {
		errs = append(errs, l.ops.DelNS(e.ns))
	}
	for _, s := range l.sites {
		errs = append(errs, l.ops.DelNS(s.NS))
	}
	l.edges, l.sites, l.networks = map[string]*edge{}, map[string]*Site{}, map[string]Attachment{}
	return errors.Join(errs...)
}
