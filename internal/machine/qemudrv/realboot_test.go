package qemudrv_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
	"github.com/haven-dr/haven/internal/qmp"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/debimage"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// realBoot bounds a Debian boot to PostgreSQL up: generous, for TCG.
const realBoot = 8 * time.Minute

// realLab is a recovery site with two networks, app and db, reached from
// an edge namespace, and a qemu driver with its state in the test's dir.
type realLab struct {
	lab      *vnet.Lab
	edge     string
	driver   *qemudrv.Driver
	stateDir string
}

func newRealLab(t testing.TB) *realLab {
	testenv.LookPath(t, "qemu-system-x86_64")
	lab := vnettest.NewLab(t)
	if _, err := lab.AddSite("rec", []vnet.Network{vnettest.Net("app", "10.93.0.0/24"), vnettest.Net("db", "10.94.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	edge, err := lab.AddEdge("edge")
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect("edge", "rec"); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	return &realLab{lab: lab, edge: edge, stateDir: state,
		driver: &qemudrv.Driver{Networks: lab, StateDir: state, Accel: os.Getenv("HAVEN_TEST_QEMU_ACCEL")}}
}

// spec is the Debian test image on both networks, healthy when PostgreSQL
// answers on the app address.
func (l *realLab) spec(t testing.TB, disk, firmware string, readdress bool) machine.Spec {
	return machine.Spec{Name: l.lab.ID + "-deb", Firmware: firmware, Readdress: readdress,
		Disks: []machine.Disk{{Name: "root", Path: disk}},
		NICs: []vnet.NIC{{Name: "eth0", Network: "app", Addr: netip.MustParsePrefix("10.93.0.20/24")},
			{Name: "eth1", Network: "db", Addr: netip.MustParsePrefix("10.94.0.20/24")}},
		Health:     machine.HealthCheck{TCPPort: 5432},
		ConsoleLog: filepath.Join(t.TempDir(), firmware+".console.log"), StopTimeout: 2 * time.Minute}
}

// boot starts spec and waits until PostgreSQL answers on every NIC's
// address, probing from the edge (the lab side, never the root namespace).
func (l *realLab) boot(t *testing.T, spec machine.Spec) machine.Instance {
	t.Helper()
	m, err := l.driver.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Stop(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), realBoot)
	defer cancel()
	for _, nic := range spec.NICs {
		one := spec
		one.NICs = []vnet.NIC{nic}
		if err := machine.WaitHealthy(ctx, l.edge, one); err != nil {
			t.Fatalf("%s: %v\nconsole:\n%s", nic.Name, err, testenv.TailFile(m.ConsoleLog()))
		}
	}
	return m
}

// stop stops m gracefully and checks the guest powered itself off.
func stop(t *testing.T, m machine.Instance) {
	t.Helper()
	if err := m.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m.State() != machine.Stopped {
		t.Fatalf("state %s", m.State())
	}
	if log := testenv.TailFile(m.ConsoleLog()); !strings.Contains(log, "reboot: Power down") {
		t.Fatalf("guest did not power off by itself (killed?); console:\n%s", log)
	}
}

// guestExec runs a program in the guest through qemu-guest-agent.
func (l *realLab) guestExec(t *testing.T, m machine.Instance, path string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var c *qmp.Client
	var err error
	for c == nil && ctx.Err() == nil { // the agent starts late in boot
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		c, err = qmp.DialGuest(dctx, filepath.Join(l.stateDir, m.Spec().Name, qemudrv.GuestAgentSocket))
		dcancel()
	}
	if c == nil {
		t.Fatalf("guest agent: %v", err)
	}
	defer c.Close()
	if args == nil {
		args = []string{} // the agent wants an array, never null
	}
	var started struct {
		PID int `json:"pid"`
	}
	if err := c.Execute(ctx, "guest-exec", map[string]any{"path": path, "arg": args, "capture-output": true}, &started); err != nil {
		t.Fatal(err)
	}
	for {
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			OutData  string `json:"out-data"`
		}
		if err := c.Execute(ctx, "guest-exec-status", map[string]any{"pid": started.PID}, &st); err != nil {
			t.Fatal(err)
		}
		if st.Exited {
			out, _ := base64.StdEncoding.DecodeString(st.OutData)
			if st.ExitCode != 0 {
				t.Fatalf("%s %v: exit %d: %s", path, args, st.ExitCode, out)
			}
			return string(out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// defaultRoutes returns the guest's IPv4 default routes as "via dev".
func (l *realLab) defaultRoutes(t *testing.T, m machine.Instance) []string {
	out := l.guestExec(t, m, "/usr/sbin/ip", "-j", "-4", "route", "show", "default")
	var routes []struct {
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		t.Fatalf("ip route: %v: %q", err, out)
	}
	var got []string
	for _, r := range routes {
		got = append(got, r.Gateway+" "+r.Dev)
	}
	return got
}

// TestFirmwareReaddress boots the Debian test image twice, through each
// firmware: first with SeaBIOS, re-addressed by a NoCloud seed onto two
// networks its own configuration knows nothing of (PostgreSQL answers on
// both addresses, the default route is via the first NIC's gateway);
// then with OVMF and no seed, converted to qcow2, where the guest keeps
// those addresses by itself. Each boot is stopped gracefully (ACPI), its console holding
// the image's ready marker and the kernel's power-down.
func TestFirmwareReaddress(t *testing.T) {
	img := debimage.Require(t)
	l := newRealLab(t)
	disk := debimage.Copy(t, img)

	spec := l.spec(t, disk, "bios", true)
	m := l.boot(t, spec)
	if got := l.defaultRoutes(t, m); strings.Join(got, ",") != "10.93.0.1 eth0" {
		t.Errorf("default routes %q, want via 10.93.0.1 on eth0 only", got)
	}
	waitConsole(t, m, debimage.ReadyMarker)
	if got := strings.TrimSpace(l.guestExec(t, m, "/usr/bin/hostname")); got != spec.Name {
		t.Errorf("hostname %q, want the seed's %q", got, spec.Name)
	}
	stop(t, m)
	if _, err := os.Stat(filepath.Join(l.stateDir, spec.Name)); !os.IsNotExist(err) {
		t.Fatalf("state left after stop: %v", err)
	}

	// The same disk as qcow2, as a user may point the driver at one.
	qcow2 := filepath.Join(t.TempDir(), "disk.qcow2")
	if out, err := exec.Command(testenv.LookPath(t, "qemu-img"), "convert", "-O", "qcow2", disk, qcow2).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v\n%s", err, out)
	}
	os.Remove(disk)
	spec = l.spec(t, qcow2, "uefi", false)
	m = l.boot(t, spec)
	waitConsole(t, m, debimage.ReadyMarker)
	if got := l.defaultRoutes(t, m); strings.Join(got, ",") != "10.93.0.1 eth0" {
		t.Errorf("without seed: default routes %q, want via 10.93.0.1 on eth0 only", got)
	}
	if got := l.guestExec(t, m, "/usr/bin/ls", "/dev/disk/by-label"); strings.Contains(got, "cidata") {
		t.Errorf("seed attached without Readdress: %s", got)
	}
	stop(t, m)
}

// waitConsole waits for text on m's console: the image prints its ready
// marker a moment after PostgreSQL starts listening.
func waitConsole(t *testing.T, m machine.Instance, text string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, _ := os.ReadFile(m.ConsoleLog()); strings.Contains(string(b), text) {
			return
		}
	}
	t.Fatalf("console lacks %q:\n%s", text, testenv.TailFile(m.ConsoleLog()))
}
