package hostrig

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine/nsdrv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Kill takes h down as a power loss does: its underlay port goes down
// first (a call in flight gets no answer, not a reset; a new one finds
// no route), then its haven host is SIGKILLed and every process in its
// namespaces (its own and its sites') or running from its state
// directory (machines and their runners) until none is left. Its site
// namespaces stay, as a dead box's state does; the rig's cleanup
// deletes them.
func (r *Rig) Kill(t testing.TB, h *Host) {
	t.Helper()
	if err := linkDown(r.underlay(), "hv"+h.Name); err != nil {
		t.Fatalf("host %s: underlay port down: %v", h.Name, err)
	}
	if h.Cmd != nil && h.Cmd.Process != nil {
		h.Cmd.Process.Kill()
		h.Cmd.Wait()
		h.Cmd = nil
	}
	h.dead = true
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pids := r.pidsOf(h)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %s: processes %v survive SIGKILL", h.Name, pids)
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	// The box's cgroups went with it; here they outlive its processes.
	if err := r.removeCgroups(h); err != nil {
		t.Errorf("host %s: cgroups of its dead machines: %v", h.Name, err)
	}
}

// removeCgroups removes the cgroups h's ns machines recorded in their
// state directories (detached machines: <state>/…/machines/<site>/
// detached/state/<machine>).
func (r *Rig) removeCgroups(h *Host) error {
	var errs []error
	for _, pat := range []string{filepath.Join(h.Dir, "machines", "*", "detached", "state"), filepath.Join(h.Dir, "*", "machines", "*", "detached", "state")} {
		dirs, _ := filepath.Glob(pat)
		for _, d := range dirs {
			errs = append(errs, nsdrv.RemoveRecordedCgroups(d))
		}
	}
	return errors.Join(errs...)
}

// pidsOf lists the processes of h: in its namespace or one of its
// sites', or whose command line names its directory.
func (r *Rig) pidsOf(h *Host) []int {
	inos := map[uint64]bool{}
	for _, ns := range append(r.siteNSs(h), h.NS) {
		var st syscall.Stat_t
		if syscall.Stat("/run/netns/"+ns, &st) == nil {
			inos[st.Ino] = true
		}
	}
	var out []int
	files, _ := filepath.Glob("/proc/[0-9]*")
	for _, f := range files {
		pid, _ := strconv.Atoi(filepath.Base(f))
		if pid == os.Getpid() || pid == 0 {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(f+"/ns/net", &st) == nil && inos[st.Ino] {
			out = append(out, pid)
			continue
		}
		if b, err := os.ReadFile(f + "/cmdline"); err == nil && strings.Contains(string(b), h.Dir+"/") {
			out = append(out, pid)
		}
	}
	return out
}

// siteNSs lists the namespaces h made for its sites.
func (r *Rig) siteNSs(h *Host) []string {
	if h.ID == "" {
		return nil
	}
	var out []string
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), h.ID+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// handleIn is a netlink handle in namespace ns.
func handleIn(ns string) (*netlink.Handle, error) {
	nh, err := netns.GetFromName(ns)
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	return netlink.NewHandleAt(nh)
}

func linkDown(ns, name string) error {
	h, err := handleIn(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	return h.LinkSetDown(l)
}

// linksIn lists the links of a host's namespace beyond its own (lo,
// eth0): VXLAN devices not yet moved, uplink veth ends.
func linksIn(ns string) []string {
	h, err := handleIn(ns)
	if err != nil {
		return nil
	}
	defer h.Close()
	links, _ := h.LinkList()
	var out []string
	for _, l := range links {
		if n := l.Attrs().Name; n != "lo" && n != "eth0" {
			out = append(out, ns+"/"+n+" ("+l.Type()+")")
		}
	}
	return out
}
