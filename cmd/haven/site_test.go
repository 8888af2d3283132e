package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestSiteCleanup: a namespace left behind under a unique prefix is removed
// by `haven site cleanup`, and reported.
func TestSiteCleanup(t *testing.T) {
	testenv.RequireRoot(t)
	prefix := vnet.NewID()
	if err := (vnet.Netlink{}).AddNS(prefix + "-left"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vnet.Netlink{}.DelNS(prefix + "-left") })
	dir := t.TempDir()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"site", "cleanup", "--prefix", prefix, "--loop-prefix", prefix,
		"--ns-state", filepath.Join(dir, "ns"), "--qemu-state", filepath.Join(dir, "qemu")})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "removed netns "+prefix+"-left") {
		t.Fatalf("output: %q", out.String())
	}
}
