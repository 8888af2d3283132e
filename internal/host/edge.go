package host

import (
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Edge is where a recovery site is joined to the world (its uplink). It
// travels as a string through Host.EnsureSite (String/ParseEdge), so the
// host's seam and its records stay as they were:
//
//	hvab12cd-inet     a namespace (the demo's and tests' internet)
//	@eth0             a host interface (or an existing bridge, br0) in
//	                  the server's own namespace: a real recovery host
//	hvab12cd-host@eth0 a host interface inside a namespace that stands for
//	                  the host (tests, never the real uplink)
//
// Either way the site's uplink veth ends in the edge's namespace with
// routes to the site's subnets. With an interface, forwarding is turned on
// there (customers' packets arrive on the interface and are routed to the
// site) and the interface must exist; a bare namespace keeps forwarding
// off, its own processes being the customers.
type Edge struct {
	NS        string
	Interface string
}

// ParseEdge reads the string form; "" is no edge.
func ParseEdge(s string) Edge {
	ns, iface, _ := strings.Cut(s, "@")
	return Edge{NS: ns, Interface: iface}
}

func (e Edge) String() string {
	if e.Interface == "" {
		return e.NS
	}
	return e.NS + "@" + e.Interface
}

// IsZero: no uplink (a test site).
func (e Edge) IsZero() bool { return e.NS == "" && e.Interface == "" }

// opsNS names the edge's namespace for vnet.Ops. The server's own
// namespace is named by its pid: vnet refuses the empty name (the root
// namespace) so that tests cannot configure the real host by mistake;
// naming it is a deliberate choice only an interface edge makes.
func (e Edge) opsNS() string {
	if e.NS == "" {
		return fmt.Sprintf("pid:%d", os.Getpid())
	}
	return e.NS
}

// check says whether the edge exists: its namespace, and its interface.
func (e Edge) check() error {
	if e.NS != "" && !nsExists(e.NS) {
		return fmt.Errorf("uplink namespace %q does not exist", e.NS)
	}
	if e.Interface == "" {
		return nil
	}
	h, err := netns.GetFromPath("/proc/self/ns/net")
	if e.NS != "" {
		h, err = netns.GetFromName(e.NS)
	}
	if err != nil {
		return err
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return err
	}
	defer nl.Close()
	if _, err := nl.LinkByName(e.Interface); err != nil {
		return fmt.Errorf("uplink interface %q in %s: %w", e.Interface, e.where(), err)
	}
	return nil
}

func (e Edge) where() string {
	if e.NS == "" {
		return "the host's namespace"
	}
	return "namespace " + e.NS
}
