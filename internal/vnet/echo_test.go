package vnet_test

import (
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestEchoCommandsRepeatTheChanges builds a lab (a site with a bridge, an
// edge, a transit link and routes, a veth into a bare namespace) through
// Echo, then runs the commands it showed, with the lab's ID renamed, in a
// shell: the copy has the same links, addresses, routes and forwarding as
// the original, so a user who types them gets what the demo made.
func TestEchoCommandsRepeatTheChanges(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "ip")
	var shown []string
	ops := vnet.Echo{Ops: vnet.Netlink{}, Show: func(c string) { shown = append(shown, c) }}
	lab := vnet.NewLab(ops)
	copyID := vnet.NewID()
	t.Cleanup(func() {
		lab.Close()
		vnet.Netlink{}.DelNS(lab.ID + "-x") // made by hand in build, not by the lab
		for _, n := range []string{"s", "e", "x"} {
			vnet.Netlink{}.DelNS(copyID + "-" + n)
		}
	})
	build(t, lab, ops)
	script := strings.ReplaceAll(strings.Join(shown, "\n"), lab.ID, copyID)
	if out, err := exec.Command("sh", "-ec", script).CombinedOutput(); err != nil {
		t.Fatalf("the shown commands fail: %v\n%s\n%s", err, script, out)
	}
	for _, n := range []string{"s", "e", "x"} {
		orig, cp := netState(t, lab.ID+"-"+n), netState(t, copyID+"-"+n)
		if strings.ReplaceAll(orig, lab.ID, copyID) != cp {
			t.Errorf("namespace %s: made\n%s\nrepeated by hand\n%s", n, orig, cp)
		}
	}
}

func build(t *testing.T, lab *vnet.Lab, ops vnet.Ops) {
	t.Helper()
	net := vnet.Network{Name: "n1", Subnet: netip.MustParsePrefix("10.78.0.0/24"), Gateway: netip.MustParseAddr("10.78.0.1")}
	if _, err := lab.AddSite("s", []vnet.Network{net}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.AddEdge("e"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect("e", "s"); err != nil {
		t.Fatal(err)
	}
	x := lab.ID + "-x"
	steps := []error{
		ops.AddNS(x),
		ops.AddVeth(lab.ID+"-e", "to-x", x, "uplink", nil),
		ops.AddAddr(x, "uplink", netip.MustParsePrefix("10.79.0.2/30")),
		ops.LinkUp(x, "uplink"),
		ops.AddRoute(x, netip.MustParsePrefix("10.78.0.0/24"), netip.MustParseAddr("10.79.0.1")),
	}
	for _, err := range steps {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Peer indexes and link-local addresses (from random MACs) differ between
// any two builds.
var random = regexp.MustCompile(`@if\d+|fe80::\S+`)

// netState is what a namespace has that the commands make: links with
// their state and addresses, routes, forwarding.
func netState(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{{"-br", "addr"}, {"route"}} {
		out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip -n %s %v: %v %s", ns, args, err, out)
		}
		b.Write(random.ReplaceAll(out, nil))
	}
	fwd, err := exec.Command("ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward").Output()
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("forward " + string(fwd))
	return b.String()
}
