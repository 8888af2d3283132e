package debimage

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
)

// TestCloudInitNetwork checks the re-addressing contract the qemu driver
// relies on, on one copy of the image booted three times with a NIC on a
// tap inside a namespace of the test's own, PostgreSQL reached with psql
// from that namespace:
//  1. a vfat cidata seed gives eth0 192.0.2.10: PostgreSQL answers there;
//  2. no seed: cloud-init stays out and 192.0.2.10 still answers;
//  3. an iso9660 cidata seed with a new instance-id moves eth0 to
//     192.0.2.11: the new address answers, the old one no longer does.
func TestCloudInitNetwork(t *testing.T) {
	selfTest(t)
	img := Require(t)
	psql := testenv.LookPath(t, "psql")
	testenv.LookPath(t, "ip")
	disk := Copy(t, img)
	dir := t.TempDir()
	ns, tap := netnsWithTap(t)
	const mac = "52:54:00:4a:76:01"
	nic := []string{"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=" + mac}

	boot := func(name, seed string) *vm {
		t.Helper()
		extra := nic
		if seed != "" {
			extra = append(extra, "-drive", "file="+seed+",format=raw,if=virtio,readonly=on")
		}
		v := bootVM(t, disk, vmOpts{netns: ns, extra: extra})
		took := v.waitReady(bootTimeout)
		t.Logf("%s: ready after %v (%s)", name, took.Round(time.Millisecond), v.accel)
		return v
	}

	v := boot("seed one (vfat)", seedVFAT(t, dir, "hv-one", fmt.Sprintf(`version: 2
ethernets:
  eth0:
    match:
      macaddress: "%s"
    addresses: [192.0.2.10/24]
    gateway4: 192.0.2.1
`, mac)))
	requirePG(t, psql, ns, "192.0.2.10", true)
	v.powerdown(2 * time.Minute)

	v = boot("no seed", "")
	if c := v.consoleText(); strings.Contains(c, "Cloud-init v.") {
		t.Errorf("cloud-init ran without a seed (ds-identify should disable it):\n%s", testenv.Tail([]byte(c)))
	}
	requirePG(t, psql, ns, "192.0.2.10", true)
	v.powerdown(2 * time.Minute)

	v = boot("seed three (iso9660, new instance-id)", seedISO(t, dir, "hv-three", fmt.Sprintf(`version: 2
ethernets:
  eth0:
    match:
      macaddress: "%s"
    addresses: [192.0.2.11/24]
    routes:
      - to: 0.0.0.0/0
        via: 192.0.2.1
`, mac)))
	requirePG(t, psql, ns, "192.0.2.11", true)
	requirePG(t, psql, ns, "192.0.2.10", false)
	v.powerdown(2 * time.Minute)
}

// netnsWithTap makes a namespace hv<random> holding a tap with 192.0.2.1/24
// (TEST-NET-1: never routed anywhere), removed when the test ends.
func netnsWithTap(t *testing.T) (ns, tap string) {
	t.Helper()
	sfx := strings.ToLower(rand.Text()[:6])
	ns, tap = "hv"+sfx, "hvt"+sfx
	ip(t, "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip(t, "-n", ns, "link", "set", "lo", "up")
	ip(t, "-n", ns, "tuntap", "add", "dev", tap, "mode", "tap")
	ip(t, "-n", ns, "addr", "add", "192.0.2.1/24", "dev", tap)
	ip(t, "-n", ns, "link", "set", tap, "up")
	return ns, tap
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// requirePG connects from inside ns to PostgreSQL at addr as the image's
// test role: it must answer within a minute (want) or refuse/time out.
func requirePG(t *testing.T, psql, ns, addr string, want bool) {
	t.Helper()
	conn := fmt.Sprintf("host=%s user=haven password=haven dbname=haven connect_timeout=3", addr)
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := exec.Command("ip", "netns", "exec", ns, psql, conn, "-Atc", "select current_user").CombinedOutput()
		ok := err == nil && strings.TrimSpace(string(out)) == "haven"
		if ok == want {
			return
		}
		if !want || time.Now().After(deadline) {
			t.Fatalf("psql to %s from %s: answered=%v, want %v: %v %s", addr, ns, ok, want, err, out)
		}
		time.Sleep(time.Second)
	}
}

// seedFiles writes a NoCloud seed's three files into a new directory.
func seedFiles(t *testing.T, dir, instance, network string) string {
	t.Helper()
	d := filepath.Join(dir, instance)
	files := map[string]string{
		"meta-data":      "instance-id: " + instance + "\nlocal-hostname: " + instance + "\n",
		"user-data":      "#cloud-config\n",
		"network-config": network,
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func seedVFAT(t *testing.T, dir, instance, network string) string {
	t.Helper()
	src := seedFiles(t, dir, instance, network)
	img := src + ".vfat"
	if out, err := exec.Command("mkfs.vfat", "-n", "cidata", "-C", img, "2048").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, out)
	}
	for _, name := range []string{"meta-data", "user-data", "network-config"} {
		cmd := exec.Command("mcopy", "-i", img, filepath.Join(src, name), "::/"+name)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mcopy: %v\n%s", err, out)
		}
	}
	return img
}

func seedISO(t *testing.T, dir, instance, network string) string {
	t.Helper()
	src := seedFiles(t, dir, instance, network)
	iso := src + ".iso"
	xorriso := testenv.LookPath(t, "xorriso")
	out, err := exec.Command(xorriso, "-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R", "-o", iso, src).CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return iso
}
