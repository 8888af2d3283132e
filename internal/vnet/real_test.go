package vnet_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// serve answers every connection in ns with the host's name.
func serve(t *testing.T, ns, addr, name string) {
	t.Helper()
	l, err := vnet.Listen(ns, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, name)
			c.Close()
		}
	}()
}

// ask connects from ns to addr and returns the first line answered.
func ask(ns, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := vnet.DialContext(ctx, ns, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// TestTestNetworkIsolated: production A and B talk; a test copy of A with
// A's address neither reaches B nor is reached instead of A; the edge
// reaches production and is refused a route to the test copy.
func TestTestNetworkIsolated(t *testing.T) {
	lab := vnettest.NewLab(t)
	if _, err := lab.AddSite("prod", []vnet.Network{vnettest.Net("app", "10.77.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.AddSite("test", []vnet.Network{vnettest.Net("apptest", "10.77.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	edge, err := lab.AddEdge("edge")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect("edge", "prod"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect("edge", "test"); !errors.Is(err, vnet.ErrConflict) {
		t.Fatalf("edge connected to an overlapping test site: %v", err)
	}
	a := vnettest.Host(t, lab, "a", "app", "10.77.0.10/24")
	b := vnettest.Host(t, lab, "b", "app", "10.77.0.11/24")
	ta := vnettest.Host(t, lab, "ta", "apptest", "10.77.0.10/24")
	serve(t, a, "10.77.0.10:80", "prod-a")
	serve(t, b, "10.77.0.11:80", "prod-b")
	serve(t, ta, "10.77.0.10:80", "test-a")

	expect(t, b, "10.77.0.10:80", "prod-a\n")
	expect(t, a, "10.77.0.11:80", "prod-b\n")
	expect(t, edge, "10.77.0.10:80", "prod-a\n")
	if got, err := ask(ta, "10.77.0.11:80"); err == nil {
		t.Fatalf("test copy reached production B: %q", got)
	}
}

func expect(t *testing.T, ns, addr, want string) {
	t.Helper()
	got, err := ask(ns, addr)
	if err != nil || got != want {
		t.Fatalf("from %s to %s: got %q %v, want %q", ns, addr, got, err, want)
	}
}

// TestRootNamespaceUntouched: building a lab adds no link, address or route
// to the root namespace.
func TestRootNamespaceUntouched(t *testing.T) {
	before := rootLinks(t)
	lab := vnettest.NewLab(t)
	lab.AddSite("prod", []vnet.Network{vnettest.Net("app", "10.78.0.0/24")})
	vnettest.Host(t, lab, "a", "app", "10.78.0.10/24")
	if after := rootLinks(t); after != before {
		t.Fatalf("root namespace changed: %d links before, %d after", before, after)
	}
}

func rootLinks(t *testing.T) int {
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	return len(ifs)
}

// TestRemoveTwice: deleting what is already gone (a namespace, a link, a
// link in a deleted namespace, a namespace file a crash left unmounted) is
// success, since cleanups and the orchestrator's retries repeat removals.
func TestRemoveTwice(t *testing.T) {
	testenv.RequireRoot(t)
	ops := vnet.Netlink{}
	ns := vnet.NewID() + "-rm"
	if err := ops.AddNS(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ops.DelNS(ns) })
	if err := ops.AddBridge(ns, "br-x"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := ops.DelLink(ns, "br-x"); err != nil {
			t.Fatalf("delete link, try %d: %v", i+1, err)
		}
	}
	for i := range 2 {
		if err := ops.DelNS(ns); err != nil {
			t.Fatalf("delete namespace, try %d: %v", i+1, err)
		}
	}
	if err := ops.DelLink(ns, "br-x"); err != nil {
		t.Fatalf("delete link in a deleted namespace: %v", err)
	}
	half := vnet.NewID() + "-half"
	path := filepath.Join("/run/netns", half)
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(path) })
	if err := ops.DelNS(half); err != nil {
		t.Fatalf("delete half-made namespace: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("half-made namespace file left: %v", err)
	}
}
