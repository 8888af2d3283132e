package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/fence"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/libvirtdrv"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/hostrig"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// TestHostLibvirtProcess: a real `haven host` process with vm_driver
// libvirt, in a namespace of its own standing for its machine, with a
// private libvirtd in the same namespace (the user's own libvirtd beside
// the worker: the host makes each domain's tap in its own namespace for
// libvirtd to open by name there, then moves it into the site's).
// Driven over HTTPS by hostapi.Client from a control namespace: a qemu
// machine booting firmware (SeaBIOS before an empty disk: a domain that
// runs without a TCG OS boot) is a domain virsh lists running with the
// spec's CPUs and memory. The host process is SIGKILLed: the domain keeps
// running. The restarted host reports it running, a second StartMachine
// adopts it (the same domain id), StopMachine undefines it, and after
// RemoveSite no domain, tap, namespace or process is left.
func TestHostLibvirtProcess(t *testing.T) {
	testenv.RequireRoot(t)
	virshBin := testenv.LookPath(t, "virsh")
	testenv.LookPath(t, "qemu-system-x86_64")
	var sock string
	var r *hostrig.Rig
	r = hostrig.New(t, hostrig.Options{Bin: havenBin, Env: baseEnv(), Base: t.TempDir(), Net: [3]byte{10, 77, 0}, Sites: []string{"rec"},
		Setup: func(t testing.TB, h *hostrig.Host) string {
			sock = testenv.LibvirtdIn(t, h.NS)
			// Runs before libvirtd's own cleanup: the host removes its
			// sites (and domains) while libvirtd still runs.
			t.Cleanup(func() {
				if r != nil {
					r.RemoveSites(t)
				}
			})
			// Wire disk paths are relative to the host's disk directory.
			if err := os.WriteFile(filepath.Join(h.Dir, "disks", "blank.img"), make([]byte, 1<<20), 0o600); err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("vm_driver: libvirt\nlibvirt_socket: %s\n", sock)
		}}, "v")
	h := r.Hosts[0]
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	virsh := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(virshBin, append([]string{"-c", "qemu:///system?socket=" + sock}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("virsh %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	ctx := fence.WithEpoch(context.Background(), epoch)
	must(h.C.EnsureSite(ctx, "rec", []vnet.Network{vnettest.Net("a", "10.233.1.0/24")}, ""))
	spec := machine.Spec{Name: "vm", Firmware: "bios", CPUs: 2, MemoryMB: 160,
		Disks:       []machine.Disk{{Name: "root", Path: "blank.img"}},
		NICs:        []vnet.NIC{{Name: "eth0", Network: "a", Addr: netip.MustParsePrefix("10.233.1.10/24")}},
		StopTimeout: time.Second}
	must(h.C.StartMachine(ctx, "rec", "qemu", spec))
	dom := libvirtdrv.DomainName("rec", spec.Name)
	if list := virsh("list", "--name"); !strings.Contains(list, dom) {
		t.Fatalf("virsh list lacks %s:\n%s", dom, list)
	}
	info := virsh("dominfo", dom)
	for _, want := range []string{"State:          running", "CPU(s):         2", "Max memory:     163840 KiB"} {
		if !strings.Contains(info, want) {
			t.Errorf("dominfo lacks %q:\n%s", want, info)
		}
	}
	tap := libvirtdrv.TapName(dom, "eth0")
	siteNS := h.C.SiteNS("rec")
	if out, err := exec.Command("ip", "-n", siteNS, "link", "show", tap).CombinedOutput(); err != nil || !strings.Contains(string(out), "master") {
		t.Errorf("tap %s not on a bridge in the site %s: %v: %s", tap, siteNS, err, out)
	}
	id := virsh("domid", dom)

	h.Cmd.Process.Kill()
	h.Cmd.Wait()
	h.Cmd = nil
	if st := virsh("domstate", dom); st != "running" {
		t.Fatalf("after SIGKILL of haven host the domain is %q: a libvirt domain outlives the host", st)
	}
	r.Start(t, h)
	if ok, err := h.C.CheckRunning(ctx, "rec", spec.Name); err != nil || !ok {
		t.Fatalf("restarted host: running %v, %v; want true", ok, err)
	}
	must(h.C.StartMachine(ctx, "rec", "qemu", spec))
	if got := virsh("domid", dom); got != id {
		t.Fatalf("the restarted host started the domain again: id %s, was %s", got, id)
	}
	must(h.C.StopMachine(ctx, "rec", spec.Name))
	if all := virsh("list", "--all", "--name"); strings.Contains(all, dom) {
		t.Fatalf("domain %s still defined after StopMachine:\n%s", dom, all)
	}
	if ok, err := h.C.CheckRunning(ctx, "rec", spec.Name); err != nil || ok {
		t.Fatalf("after StopMachine: running %v, %v; want false", ok, err)
	}
	must(h.C.RemoveSite(ctx, "rec"))
	if all := virsh("list", "--all", "--name"); all != "" {
		t.Errorf("domains left after RemoveSite:\n%s", all)
	}
	h.Stop()
	nss, links, procs := r.Leftovers()
	if len(nss)+len(links)+len(procs) > 0 {
		t.Errorf("left behind: namespaces %v, links %v, processes %v", nss, links, procs)
	}
}
