package nsdrv

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/machine/machinetest"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/testenv/debimage"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/haven-dr/haven/internal/vnet/vnettest"
)

// debianEnv is a lab whose driver boots the Debian test image: systemd as
// PID 1 takes far longer than the busybox images.
func debianEnv(t testing.TB) *machinetest.Env {
	testenv.RequireRoot(t)
	return machinetest.NewEnv(t, machinetest.Config{
		New: func(t testing.TB, nets machine.Networks) machine.Driver {
			return &Driver{Networks: nets, StateDir: filepath.Join(t.TempDir(), "state")}
		},
		Boot: 3 * time.Minute,
	})
}

// debianSpec boots a fresh copy of the Debian image (GPT: ESP and root)
// with its PostgreSQL as the health check.
func debianSpec(t testing.TB, e *machinetest.Env, name, addr string) machine.Spec {
	s := e.Spec(name, "app", addr)
	s.Disks = []machine.Disk{{Name: "root", Path: debianImage(t)}}
	s.Health = machine.HealthCheck{TCPPort: 5432}
	s.StopTimeout = time.Minute
	return s
}

// psql runs a query as haven from client namespace ns. The health check
// passes once PostgreSQL accepts TCP, which it does while still starting
// up: that one answer is waited out (bounded), any other fails the test.
func psql(t *testing.T, ns, addr, query string) string {
	t.Helper()
	bin := testenv.LookPath(t, "psql")
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := exec.Command("ip", "netns", "exec", ns, bin, "-X", "-At",
			"postgresql://haven:haven@"+addr+"/haven?connect_timeout=10", "-c", query).CombinedOutput()
		if err == nil {
			return strings.TrimSpace(string(out))
		}
		if !strings.Contains(string(out), "the database system is starting up") || time.Now().After(deadline) {
			t.Fatalf("psql from %s to %s: %v\n%s", ns, addr, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// inside runs a command in all of the machine's namespaces.
func inside(t *testing.T, m *instance, args ...string) (string, error) {
	t.Helper()
	nsenter := testenv.LookPath(t, "nsenter")
	out, err := exec.Command(nsenter, append([]string{"-t", fmt.Sprint(m.pid), "-a"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestDebianSystemd boots a real Debian root disk with systemd as PID 1,
// queries its PostgreSQL from a client on the network, checks systemd
// knows it is in a container, stops it with SIGRTMIN+3 and checks that
// PostgreSQL shut down cleanly and nothing of the machine is left.
func TestDebianSystemd(t *testing.T) {
	e := debianEnv(t)
	spec := debianSpec(t, e, "deb", "10.91.0.10/24")
	start := time.Now()
	mi := e.Start(spec)
	m := mi.(*instance)
	e.WaitHealthy(mi, e.Edge)
	t.Logf("Start to healthy: %v", time.Since(start))
	if !m.systemd || m.stopSig != SIGRTMIN3 {
		t.Fatalf("systemd %v, stop signal %v: want systemd and SIGRTMIN+3", m.systemd, m.stopSig)
	}
	client := vnettest.Host(t, e.Lab, "cl", "app", "10.91.0.60/24")
	if got := psql(t, client, "10.91.0.10", "select count(*) from pg_stat_activity where usename = 'haven'"); got != "1" {
		t.Fatalf("query answered %q", got)
	}
	if got, err := inside(t, m, "systemd-detect-virt", "--container"); err != nil || got != "container-other" {
		t.Fatalf("systemd-detect-virt --container: %q %v", got, err)
	}
	// The cgroup tree systemd built lies inside the machine's own cgroup.
	if _, err := os.Stat(filepath.Join(m.cgroup, "init.scope")); err != nil {
		t.Fatalf("systemd's init.scope not in the machine's cgroup: %v", err)
	}
	stopAndCheckGone(t, m)
	checkCleanShutdown(t, spec.Disks[0].Path)
}

// checkCleanShutdown reads PostgreSQL's control file from the stopped
// disk: "shut down" only if systemd stopped the service before halting.
func checkCleanShutdown(t *testing.T, img string) {
	t.Helper()
	ctl := testenv.LookPath(t, filepath.Join(testenv.PostgresBin(t), "pg_controldata"))
	mnt := mountRootPartition(t, img)
	out, err := exec.Command(ctl, filepath.Join(mnt, "var/lib/postgresql/15/main")).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_controldata: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Database cluster state:               shut down\n") {
		t.Fatalf("PostgreSQL was not shut down cleanly:\n%s", out)
	}
}

// mountRootPartition mounts the image's root partition read-only, found
// the way the driver finds it, until the test ends.
func mountRootPartition(t *testing.T, img string) string {
	t.Helper()
	parts, err := choose(machine.Disk{Name: "root", Path: img}, true)
	if err != nil {
		t.Fatal(err)
	}
	p := parts[0]
	l, err := loop.AttachRange(img, vnet.NewID()+"-check", true, p.part.Start, p.part.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mnt := t.TempDir()
	if err := syscall.Mount(l.Path, mnt, p.fstype, syscall.MS_RDONLY, "norecovery"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	return mnt
}

// debianImage returns a fresh copy of the Debian test image.
func debianImage(t testing.TB) string {
	return debimage.Copy(t, debimage.Require(t))
}

// TestDebianReaddress boots the Debian image twice with Readdress: first
// on the app network, which makes cloud-init write that address into the
// disk's networkd configuration (the "production" configuration), then on
// a subnet that configuration does not name. The second seed has a new
// instance-id, cloud-init renders the new address, and the machine
// answers there with no trace of the old one.
func TestDebianReaddress(t *testing.T) {
	e := debianEnv(t)
	if _, err := e.Lab.AddSite("rec2", []vnet.Network{vnettest.Net("db", "10.92.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	first := debianSpec(t, e, "re", "10.91.0.10/24")
	first.Readdress = true
	m := e.Start(first).(*instance)
	e.WaitHealthy(m, e.Edge)
	if got := networkdFile(t, m); !strings.Contains(got, "10.91.0.10/24") {
		t.Fatalf("first boot: cloud-init's networkd file:\n%s", got)
	}
	stopAndCheckGone(t, m)

	second := first
	second.NICs = []vnet.NIC{{Name: "eth0", Network: "db", Addr: netip.MustParsePrefix("10.92.0.10/24")}}
	client := vnettest.Host(t, e.Lab, "cl", "db", "10.92.0.60/24")
	m = e.Start(second).(*instance)
	e.WaitHealthy(m, client)
	if got := psql(t, client, "10.92.0.10", "select current_user"); got != "haven" {
		t.Fatalf("query answered %q", got)
	}
	if got := networkdFile(t, m); !strings.Contains(got, "10.92.0.10/24") || strings.Contains(got, "10.91.") {
		t.Fatalf("second boot: cloud-init's networkd file:\n%s", got)
	}
	addrs, err := inside(t, m, "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(addrs, "10.92.0.10/24") || strings.Contains(addrs, "10.91.") {
		t.Fatalf("eth0 addresses: %v\n%s", err, addrs)
	}
	stopAndCheckGone(t, m)
}

// networkdFile is the networkd configuration cloud-init rendered for eth0.
func networkdFile(t *testing.T, m *instance) string {
	t.Helper()
	out, err := inside(t, m, "cat", "/etc/systemd/network/10-cloud-init-eth0.network")
	if err != nil {
		t.Fatalf("cloud-init's networkd file: %v\n%s", err, out)
	}
	return out
}

// TestDebianInitKilled: the machine's PID 1 (systemd) killed with SIGKILL
// takes the whole machine with it, and Stop still releases everything.
func TestDebianInitKilled(t *testing.T) {
	e := debianEnv(t)
	mi := e.Start(debianSpec(t, e, "kill", "10.91.0.10/24"))
	e.WaitHealthy(mi, e.Edge)
	m := mi.(*instance)
	if err := m.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-time.After(time.Minute):
		t.Fatal("machine still runs a minute after its init was killed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	checkGone(t, m)
}
