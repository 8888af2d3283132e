package debimage

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
)

// TestContainerSeedDir runs the root partition of a copy as a container
// (systemd-nspawn: systemd as PID 1 in namespaces, the host's kernel) with
// a NoCloud seed directory, as LXD seeds containers: cloud-init must give
// the container's eth0 the seed's address, and PostgreSQL must answer
// there from another namespace.
func TestContainerSeedDir(t *testing.T) {
	img := Require(t)
	nspawn := testenv.LookPath(t, "systemd-nspawn")
	psql := testenv.LookPath(t, "psql")
	root := mountRoot(t, img, Copy(t, img))

	const mac = "52:54:00:4a:76:02"
	seed := filepath.Join(root, "var/lib/cloud/seed/nocloud-net")
	if err := os.MkdirAll(seed, 0o755); err != nil {
		t.Fatal(err)
	}
	src := seedFiles(t, t.TempDir(), "hv-container", fmt.Sprintf(`version: 2
ethernets:
  eth0:
    match:
      macaddress: "%s"
    addresses: [192.0.2.20/24]
    gateway4: 192.0.2.1
`, mac))
	for _, name := range []string{"meta-data", "user-data", "network-config"} {
		if err := copyFile(filepath.Join(src, name), filepath.Join(seed, name)); err != nil {
			t.Fatal(err)
		}
	}

	// The container gets a namespace with eth0, a veth whose peer sits in
	// the client namespace with 192.0.2.1.
	sfx := strings.ToLower(rand.Text()[:6])
	guestNS, clientNS, peer := "hvg"+sfx, "hvc"+sfx, "hvp"+sfx
	for _, ns := range []string{guestNS, clientNS} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ip(t, "-n", ns, "link", "set", "lo", "up")
	}
	ip(t, "-n", guestNS, "link", "add", "eth0", "address", mac, "type", "veth", "peer", "name", peer, "netns", clientNS)
	ip(t, "-n", clientNS, "addr", "add", "192.0.2.1/24", "dev", peer)
	ip(t, "-n", clientNS, "link", "set", peer, "up")

	console := &lockedTail{}
	cmd := exec.Command(nspawn, "--quiet", "--boot", "--register=no", "--keep-unit",
		// networkd and cloud-init configure the NIC only with it; nspawn
		// grants it by itself only with its own --private-network.
		"--capability=CAP_NET_ADMIN", "--console=read-only",
		"--machine=hv"+sfx, "--directory="+root, "--network-namespace-path=/run/netns/"+guestNS)
	cmd.Stdout, cmd.Stderr = console, console
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stopContainer(t, cmd, exited, root)
		if t.Failed() {
			t.Logf("container console:\n%s", testenv.Tail([]byte(console.String())))
			for _, f := range []string{"var/log/cloud-init.log", "run/cloud-init/ds-identify.log"} {
				b, _ := os.ReadFile(filepath.Join(root, f))
				t.Logf("%s:\n%s", f, testenv.Tail(b))
			}
		}
	})

	start := time.Now()
	deadline := time.After(bootTimeout)
	for !strings.Contains(console.String(), ReadyMarker) {
		select {
		case <-exited:
			t.Fatalf("nspawn exited before %q: %v\n%s", ReadyMarker, waitErr, testenv.Tail([]byte(console.String())))
		case <-deadline:
			t.Fatalf("no %q from the container after %v:\n%s", ReadyMarker, bootTimeout, testenv.Tail([]byte(console.String())))
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Logf("container ready after %v", time.Since(start).Round(time.Millisecond))
	requirePG(t, psql, clientNS, "192.0.2.20", true)
}

// mountRoot mounts the root partition of disk (a copy of img) through a
// loop device over its byte range, unmounted (and the device, autocleared,
// detached) when the test ends.
func mountRoot(t *testing.T, img Image, disk string) string {
	t.Helper()
	testenv.RequireRoot(t)
	mnt := filepath.Join(t.TempDir(), "hvroot")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := fmt.Sprintf("loop,offset=%d,sizelimit=%d", img.RootOffset, img.RootSize)
	if out, err := exec.Command("mount", "-t", "ext4", "-o", opts, disk, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount root partition: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			exec.Command("umount", "-l", mnt).Run()
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	return mnt
}

// stopContainer asks nspawn for an orderly shutdown (SIGTERM: it tells the
// container's systemd to power off) and, if that takes too long, kills
// nspawn and every process still running inside root, so the root's mount
// can go.
func stopContainer(t *testing.T, cmd *exec.Cmd, exited chan struct{}, root string) {
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(time.Minute):
	}
	t.Errorf("container did not shut down within a minute; killing it")
	cmd.Process.Kill()
	<-exited
	procs, _ := filepath.Glob("/proc/[0-9]*/root")
	for _, p := range procs {
		if r, err := os.Readlink(p); err == nil && (r == root || strings.HasPrefix(r, root+"/")) {
			var pid int
			fmt.Sscanf(p, "/proc/%d/root", &pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
