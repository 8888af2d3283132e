package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/nsdrv"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/debimage"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// rvLab is where the real-VM tests run: a primary site with network prim,
// a recovery site with networks rec and rec2 on other subnets (so every
// recovered machine must be re-addressed), one client namespace on each
// network, and both machine drivers with their state in the test's dir.
type rvLab struct {
	t      *testing.T
	dir    string // short (/tmp/hv…): sockets live below it
	lab    *vnet.Lab
	img    debimage.Image
	qemu   *qemudrv.Driver
	ns     *nsdrv.Driver
	client map[string]string // network → client namespace
}

// Subnets the image's own configuration knows nothing of.
var rvNets = map[string]string{"prim": "10.71.0.0/24", "rec": "10.72.0.0/24", "rec2": "10.73.0.0/24"}

// rvBoot bounds a boot to PostgreSQL answering: generous, for TCG.
const rvBoot = 8 * time.Minute

func newRVLab(t *testing.T) *rvLab {
	testenv.RequireRoot(t)
	testenv.LookPath(t, "qemu-system-x86_64")
	testenv.LookPath(t, "qemu-img")
	l := &rvLab{t: t, img: debimage.Require(t), dir: testenv.Dir(t), lab: vnettest.NewLab(t), client: map[string]string{}}
	if _, err := l.lab.AddSite("prim", []vnet.Network{vnettest.Net("prim", rvNets["prim"])}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.lab.AddSite("rec", []vnet.Network{vnettest.Net("rec", rvNets["rec"]), vnettest.Net("rec2", rvNets["rec2"])}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"prim", "rec", "rec2"} {
		l.client[n] = vnettest.Host(t, l.lab, "c"+n, n, l.addr(n, 250)+"/24")
	}
	l.qemu = &qemudrv.Driver{Networks: l.lab, StateDir: filepath.Join(l.dir, "q"), Accel: "auto"}
	l.ns = &nsdrv.Driver{Networks: l.lab, StateDir: filepath.Join(l.dir, "n")}
	return l
}

// addr is host number host on network n.
func (l *rvLab) addr(n string, host int) string {
	p := netip.MustParsePrefix(rvNets[n]).Addr().As4()
	p[3] = byte(host)
	return netip.AddrFrom4(p).String()
}

// nic is NIC name on network n with host number host.
func (l *rvLab) nic(name, n string, host int) vnet.NIC {
	return vnet.NIC{Name: name, Network: n, Addr: netip.MustParsePrefix(l.addr(n, host) + "/24")}
}

// spec is a machine of the lab booting disks through SeaBIOS (the ns
// driver ignores Firmware), re-addressed onto nics by cloud-init.
func (l *rvLab) spec(name string, disks []machine.Disk, nics ...vnet.NIC) machine.Spec {
	return machine.Spec{Name: l.lab.ID + "-" + name, Firmware: "bios", CPUs: 1, Readdress: true, Disks: disks, NICs: nics,
		Health: machine.HealthCheck{TCPPort: 5432}, StopTimeout: 2 * time.Minute,
		ConsoleLog: filepath.Join(l.dir, name+".console.log")}
}

// start boots spec with driver d; it is stopped when the test ends.
func (l *rvLab) start(d machine.Driver, spec machine.Spec) machine.Instance {
	l.t.Helper()
	m, err := d.Start(context.Background(), spec)
	if err != nil {
		l.t.Fatalf("start %s with %s: %v", spec.Name, d.Name(), err)
	}
	l.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			l.t.Errorf("stop %s: %v", spec.Name, err)
		}
	})
	return m
}

// ready waits until PostgreSQL answers a query on every NIC's address,
// asked from the client on that NIC's network.
func (l *rvLab) ready(m machine.Instance) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rvBoot)
	defer cancel()
	for _, n := range m.Spec().NICs {
		one := m.Spec()
		one.NICs = []vnet.NIC{n}
		if err := machine.WaitHealthy(ctx, l.client[n.Network], one); err != nil {
			l.t.Fatalf("%s %s: %v\nconsole:\n%s", one.Name, n.Name, err, testenv.TailFile(m.ConsoleLog()))
		}
		if got := pgQuery(l.t, l.client[n.Network], n.Addr.Addr().String(), "select current_user"); len(got) != 1 || got[0] != "haven" {
			l.t.Fatalf("%s: current_user %q", n.Addr, got)
		}
	}
}

// boot is start, then ready.
func (l *rvLab) boot(d machine.Driver, spec machine.Spec) machine.Instance {
	l.t.Helper()
	t0 := time.Now()
	m := l.start(d, spec)
	l.ready(m)
	l.t.Logf("%s booted on the %s driver in %v", spec.Name, d.Name(), time.Since(t0).Round(time.Millisecond))
	return m
}

// sock is a file of a qemu machine's state directory (qmp.sock, qga.sock, pid).
func (l *rvLab) sock(spec machine.Spec, file string) string {
	return filepath.Join(l.qemu.StateDir, spec.Name, file)
}

// disk copies the test image for one machine.
func (l *rvLab) disk() string { return debimage.Copy(l.t, l.img) }

// allocated is how much data a file holds (its holes not counted).
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// realVMSites are the sites and networks of the real-VM server tests'
// plans, a format whose %[1]s is the primary subnet and %[2]s the recovery
// one.
const realVMSites = `sites: {primary: onprem, recovery: cloud}
networks:
  primary: [{name: prod, subnet: %[1]s, gateway: 10.71.0.1}]
  recovery: [{name: rec, subnet: %[2]s, gateway: 10.72.0.1}]
  test: [{name: drill, subnet: %[2]s, gateway: 10.72.0.1}]
mapping:
  recovery: {prod: rec}
  test: {prod: drill}
`
