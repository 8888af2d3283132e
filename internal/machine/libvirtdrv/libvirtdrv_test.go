package libvirtdrv_test

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
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/debimage"
	"github.com/haven-dr/haven/internal/vnet"
)

// realBoot bounds a Debian boot to PostgreSQL up: generous, for TCG.
const realBoot = 8 * time.Minute

// virsh runs virsh against the test's private libvirtd.
func virsh(t *testing.T, sock string, args ...string) string {
	t.Helper()
	a := append([]string{"-c", "qemu:///system?socket=" + sock}, args...)
	out, err := exec.Command(testenv.LookPath(t, "virsh"), a...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestDomain boots the Debian test image as a libvirt domain (SeaBIOS,
// re-addressed by a NoCloud seed onto a recovery network) under a private
// libvirtd: the domain is listed by virsh with the spec's size and
// autostart off, PostgreSQL answers on its address from the site's edge
// and from the site namespace,
// its tap sits on the site's bridge (not in the root namespace), a second
// Start leaves the running domain alone, and Stop shuts the guest down by
// ACPI and undefines the domain, taps and seed included; Stop again is a
// no-op.
func TestDomain(t *testing.T) {
	img := debimage.Require(t)
	sock := testenv.Libvirtd(t)
	state := filepath.Join(t.TempDir(), "state")
	var d *libvirtdrv.Driver
	e := machinetest.NewEnv(t, machinetest.Config{New: func(t testing.TB, nets machine.Networks) machine.Driver {
		d = &libvirtdrv.Driver{Networks: nets, Socket: sock, StateDir: state, Accel: os.Getenv("HAVEN_TEST_LIBVIRT_ACCEL")}
		return d
	}})
	lab, edge := e.Lab, e.Edge
	d.Site = lab.ID
	t.Cleanup(func() { d.Close() })
	spec := machine.Spec{Name: "deb", Firmware: "bios", Readdress: true, MemoryMB: 768, CPUs: 2,
		Disks:      []machine.Disk{{Name: "root", Path: debimage.Copy(t, img), Format: "raw"}},
		NICs:       []vnet.NIC{{Name: "eth0", Network: "app", Addr: netip.MustParsePrefix("10.91.0.20/24")}},
		Health:     machine.HealthCheck{TCPPort: 5432},
		ConsoleLog: filepath.Join(t.TempDir(), "console.log"), StopTimeout: 2 * time.Minute}
	dom := libvirtdrv.DomainName(lab.ID, spec.Name)

	m, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), realBoot)
	defer cancel()
	if err := machine.WaitHealthy(ctx, edge, spec); err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, testenv.TailFile(m.ConsoleLog()))
	}
	if list := virsh(t, sock, "list", "--name"); !strings.Contains(list, dom) {
		t.Fatalf("virsh list lacks %s:\n%s", dom, list)
	}
	info := virsh(t, sock, "dominfo", dom)
	for _, want := range []string{"Max memory:     786432 KiB", "CPU(s):         2", "Autostart:      disable", "State:          running"} {
		if !strings.Contains(info, want) {
			t.Errorf("dominfo lacks %q:\n%s", want, info)
		}
	}
	tap := libvirtdrv.TapName(dom, "eth0")
	if _, err := net.InterfaceByName(tap); err == nil {
		t.Errorf("tap %s is in the root namespace", tap)
	}
	att, _ := lab.Attachment("app")
	if out, err := exec.Command("ip", "-n", att.NS, "-o", "link", "show", "master", att.Bridge).CombinedOutput(); err != nil || !strings.Contains(string(out), tap) {
		t.Errorf("tap %s not on %s/%s: %v\n%s", tap, att.NS, att.Bridge, err, out)
	}

	id := virsh(t, sock, "domid", dom)
	again, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("second start: %v", err)
	}
	if got := virsh(t, sock, "domid", dom); got != id {
		t.Fatalf("second start restarted the domain: id %q, was %q", got, id)
	}
	if again.State() != machine.Running {
		t.Fatalf("second start: state %s", again.State())
	}
	if err := machine.WaitHealthy(ctx, att.NS, spec); err != nil { // from the site namespace itself, as the host probes
		t.Fatalf("after second start: %v", err)
	}

	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.State() != machine.Stopped {
		t.Fatalf("state %s", m.State())
	}
	select {
	case <-again.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the second start's instance did not see the domain go")
	}
	if log := testenv.TailFile(m.ConsoleLog()); !strings.Contains(log, "reboot: Power down") {
		t.Fatalf("guest did not power off by itself (destroyed?); console:\n%s", log)
	}
	if list := virsh(t, sock, "list", "--all", "--name"); strings.Contains(list, dom) {
		t.Fatalf("domain still defined after stop:\n%s", list)
	}
	if out, _ := exec.Command("ip", "-n", att.NS, "link", "show", tap).CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("tap left in the site: %s", out)
	}
	if _, err := os.Stat(filepath.Join(state, spec.Name)); !os.IsNotExist(err) {
		t.Errorf("state left after stop: %v", err)
	}
	if err := again.Stop(context.Background()); err != nil {
		t.Fatalf("stop again: %v", err)
	}
}
