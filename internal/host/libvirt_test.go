package host

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/libvirtdrv"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// TestLibvirtDomainOutlivesHost: on a host with vm_driver libvirt, a qemu
// machine booting firmware runs as a libvirt domain of a private
// libvirtd. The host's Close leaves it running; a new Local over the same
// state (a restarted server or `haven host`) reports it running, a second
// StartMachine keeps the same domain (its id does not change), and
// StopMachine undefines it and removes its tap and record. A domain
// destroyed behind Haven's back while no process watched it reads as
// stopped after the next restart, and RemoveSite undefines it.
// The guest is SeaBIOS in front of an empty disk: a domain that runs,
// without the minutes of a TCG boot.
func TestLibvirtDomainOutlivesHost(t *testing.T) {
	sock := testenv.Libvirtd(t)
	virsh := testenv.LookPath(t, "virsh")
	testenv.LookPath(t, "qemu-system-x86_64")
	h, edge := newSiteHost(t)
	vms := VMConfig{VMDriver: "libvirt", LibvirtSocket: sock}
	h.UseVMs(vms)
	ctx := context.Background()
	if err := h.EnsureSite(ctx, "rec", []vnet.Network{vnettest.Net("a", "10.233.1.0/24")}, edge); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(t.TempDir(), "blank.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := machine.Spec{Name: "vm", Firmware: "bios", CPUs: 1, MemoryMB: 128,
		Disks:       []machine.Disk{{Name: "root", Path: disk}},
		NICs:        []vnet.NIC{{Name: "eth0", Network: "a", Addr: netip.MustParsePrefix("10.233.1.10/24")}},
		Health:      machine.HealthCheck{TCPPort: 22},
		StopTimeout: time.Second, ConsoleLog: filepath.Join(t.TempDir(), "console.log")}
	dom := libvirtdrv.DomainName("rec", spec.Name)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(virsh, append([]string{"-c", "qemu:///system?socket=" + sock}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("virsh %v: %v: %s", args, err, out)
		}
		return out
	}
	defined := func() bool {
		return strings.Contains(must("list", "--all", "--name"), dom)
	}
	restart := func() *Local {
		t.Helper()
		n, err := NewLocal(h.dir, nil, vnet.Netlink{})
		if err != nil {
			t.Fatal(err)
		}
		n.UseVMs(vms)
		return n
	}

	if err := h.StartMachine(ctx, "rec", "qemu", spec); err != nil {
		t.Fatal(err)
	}
	if st := must("domstate", dom); st != "running" {
		t.Fatalf("domain %s is %q", dom, st)
	}
	var rec machine.Spec
	if err := readJSON(h.domainRecord("rec", spec.Name), &rec); err != nil || rec.StopTimeout != time.Second || rec.NICs[0].MAC == nil {
		t.Fatalf("record %+v %v: want the validated spec (stop timeout, MAC)", rec, err)
	}
	id := must("domid", dom)
	h.Close(ctx)
	if st := must("domstate", dom); st != "running" {
		t.Fatalf("after the host's Close the domain is %q: a libvirt domain outlives the process", st)
	}

	h2 := restart()
	if !h2.Running("rec", spec.Name) {
		t.Fatal("the restarted host does not see the running domain")
	}
	if err := h2.StartMachine(ctx, "rec", "qemu", spec); err != nil {
		t.Fatal(err)
	}
	if got := must("domid", dom); got != id {
		t.Fatalf("the restarted host started the domain again: id %s, was %s", got, id)
	}
	if err := h2.EnsureSite(ctx, "rec", []vnet.Network{vnettest.Net("a", "10.233.9.0/24")}, edge); err == nil {
		t.Fatal("the site was remade under the adopted domain")
	}
	if err := h2.StopMachine(ctx, "rec", spec.Name); err != nil {
		t.Fatal(err)
	}
	if defined() {
		t.Fatalf("domain %s still defined after StopMachine", dom)
	}
	tap := libvirtdrv.TapName(dom, "eth0")
	if _, err := net.InterfaceByName(tap); err == nil {
		t.Errorf("tap %s left in the root namespace", tap)
	}
	if out, _ := exec.Command("ip", "-n", h.SiteNS("rec"), "link", "show", tap).CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("tap %s left in the site: %s", tap, out)
	}
	if h2.Running("rec", spec.Name) {
		t.Fatal("a stopped machine reads as running")
	}
	if names := h2.domainNames("rec"); len(names) > 0 {
		t.Fatalf("records left after stop: %v", names)
	}

	// Destroyed by the admin while no Haven process ran.
	if err := h2.StartMachine(ctx, "rec", "qemu", spec); err != nil {
		t.Fatal(err)
	}
	h2.Close(ctx)
	must("destroy", dom)
	h3 := restart()
	if h3.Running("rec", spec.Name) {
		t.Fatal("a domain destroyed by virsh reads as running after a restart")
	}
	if err := h3.RemoveSite(ctx, "rec"); err != nil {
		t.Fatal(err)
	}
	if defined() {
		t.Fatalf("domain %s still defined after RemoveSite", dom)
	}
	if names := h3.domainNames("rec"); len(names) > 0 {
		t.Fatalf("records left after RemoveSite: %v", names)
	}
}

func TestVMConfigCheck(t *testing.T) {
	for _, c := range []VMConfig{{VMDriver: "xen"}, {VMDriver: "libvirt", LibvirtSocket: "run/libvirt-sock"}} {
		if err := c.Check(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	for _, c := range []VMConfig{{}, {VMDriver: "qemu"}, {VMDriver: "libvirt", LibvirtSocket: "/run/x"}} {
		if err := c.Check(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
}
