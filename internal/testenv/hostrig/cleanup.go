package hostrig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/vnet"
)

// Epoch is the HA leader epoch the cleanup's orders carry: above any a
// test's server reaches.
const Epoch = 1 << 40

// Leftovers is what the rig made that must be gone: namespaces named by
// its prefix or a host's ID, links in the hosts' namespaces beyond their
// own, processes running from its directory (hosts and machines), loop
// devices and mounts of files under it.
func (r *Rig) Leftovers() (nss, links, procs []string) {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, r.Prefix) && !r.isRigNS(n) {
			nss = append(nss, n)
		}
		for _, h := range r.Hosts {
			if h.ID != "" && strings.HasPrefix(n, h.ID+"-") {
				nss = append(nss, n)
			}
		}
	}
	for _, h := range r.Hosts {
		links = append(links, linksIn(h.NS)...)
	}
	procs = procsUnder(r.opt.Base)
	loops, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, l := range loops {
		if b, _ := os.ReadFile(l); strings.HasPrefix(string(b), r.opt.Base+"/") {
			procs = append(procs, "loop device of "+strings.TrimSpace(string(b)))
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, r.opt.Base+"/") {
			procs = append(procs, "mount "+l)
		}
	}
	return nss, links, procs
}

func (r *Rig) isRigNS(n string) bool {
	if n == r.underlay() || n == r.Ctl || slices.Contains(r.Others, n) {
		return true
	}
	return slices.ContainsFunc(r.Hosts, func(h *Host) bool { return h.NS == n })
}

// procsUnder lists processes whose command line names dir, as
// "pid: command line".
func procsUnder(dir string) []string {
	var out []string
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), dir+"/") {
			out = append(out, filepath.Base(filepath.Dir(f))+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

// RemoveSites removes Options.Sites through every host that answers (the
// cleanup does it first; a test whose hosts need a service that its own
// cleanup stops earlier calls it from a cleanup of its own as well).
func (r *Rig) RemoveSites(t testing.TB) {
	ctx, cancel := context.WithTimeout(fence.WithEpoch(context.Background(), Epoch), 2*time.Minute)
	defer cancel()
	for _, h := range r.Hosts {
		if h.Cmd == nil || h.C == nil || h.dead {
			continue
		}
		for _, s := range r.opt.Sites {
			if err := h.C.RemoveSite(ctx, s); err != nil {
				t.Errorf("remove site %s on %s: %v", s, h.Name, err)
			}
		}
	}
}

// cleanup removes the sites through the hosts that answer, stops them,
// kills what a dead host or a failed removal left and deletes every
// namespace.
func (r *Rig) cleanup(t testing.TB) func() {
	return func() {
		r.RemoveSites(t)
		for _, h := range r.Hosts {
			h.Stop()
		}
		for _, h := range r.Hosts {
			for _, p := range r.pidsOf(h) { // a dead host's, or machines a failed removal left
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
		for _, h := range r.Hosts {
			if h.dead { // Kill removed them, unless it failed midway
				if err := r.removeCgroups(h); err != nil {
					t.Errorf("host %s: cgroups of its dead machines: %v", h.Name, err)
				}
			}
		}
		for _, p := range procsUnder(r.opt.Base) {
			var pid int
			fmt.Sscan(p, &pid)
			if pid > 0 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		ops := vnet.Netlink{}
		for _, h := range r.Hosts {
			for _, n := range r.siteNSs(h) {
				if !h.dead {
					t.Errorf("namespace %s left by host %s: deleting it", n, h.Name)
				}
				ops.DelNS(n)
			}
			ops.DelNS(h.NS)
		}
		for _, n := range append(r.Others, r.Ctl, r.underlay()) {
			ops.DelNS(n)
		}
		r.checkGone(t)
	}
}

// checkGone fails the test if anything of the rig's outlives its
// cleanup (a loop device's autoclear may take a moment).
func (r *Rig) checkGone(t testing.TB) {
	var left []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		nss, _, procs := r.Leftovers()
		left = append(nss, procs...)
		ents, _ := os.ReadDir("/run/netns")
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), r.Prefix) {
				left = append(left, "namespace "+e.Name())
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("left behind by the recovery hosts: %v", left)
	}
}
