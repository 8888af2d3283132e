package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/qmp"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestQemuLibvirtDomain protects a libvirt domain by its name: a private
// libvirtd runs a (paused) domain with a raw disk, the agent reaches its
// monitor through libvirtd, the first point restores to the disk, and
// after a guest write (qemu-io through libvirt's HMP pass-through) the
// next point reads only the dirty chunks and restores to the new content.
// A domain that is not running is refused by name.
func TestQemuLibvirtDomain(t *testing.T) {
	testenv.LookPath(t, "qemu-img")
	sock := testenv.Libvirtd(t)
	dir := t.TempDir()
	disk := mkDisk(t, dir, "disk0", "raw", 32<<20)
	name := "hv-agent-" + strings.ToLower(randomTag())
	xml := fmt.Sprintf(`<domain type='qemu'><name>%s</name><memory unit='MiB'>64</memory>
<os><type arch='x86_64' machine='q35'>hvm</type></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>
<target dev='vda' bus='virtio'/><alias name='ua-disk0'/></disk></devices></domain>`, name, disk.path)
	def := filepath.Join(dir, "domain.xml")
	if err := os.WriteFile(def, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	virshPath := testenv.LookPath(t, "virsh")
	run := func(args ...string) ([]byte, error) {
		return exec.Command(virshPath, append([]string{"-c", "qemu:///system?socket=" + sock}, args...)...).CombinedOutput()
	}
	virsh := func(args ...string) {
		t.Helper()
		if out, err := run(args...); err != nil {
			t.Fatalf("virsh %v: %v\n%s", args, err, out)
		}
	}
	virsh("create", def, "--paused") // transient: gone once destroyed
	t.Cleanup(func() { run("destroy", name); run("undefine", name) })

	cfg, err := ParseConfig(fmt.Sprintf(`
vault: /unused
state_dir: %s
machines:
  - name: m1
    provider: qemu
    libvirt_domain: %s
    libvirt_socket: %s
    disks: [{name: disk0, device: ua-disk0}]
    policy: {frequency: 15s, rpo_alert: 60s}
`, filepath.Join(dir, "state"), name, sock))
	if err != nil {
		t.Fatal(err)
	}
	v := newVault(t, nil)
	a := newAgent(cfg, v)
	mon, err := qmp.DialLibvirt(context.Background(), sock, name)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	hmp := func(cmd string) {
		t.Helper()
		var out string
		if err := mon.Execute(context.Background(), "human-monitor-command", map[string]any{"command-line": cmd}, &out); err != nil || strings.Contains(strings.ToLower(out), "error") {
			t.Fatalf("%s: %v %s", cmd, err, out)
		}
	}
	content := func() map[string][]byte {
		hmp(`qemu-io -d /machine/peripheral/ua-disk0/virtio-backend "flush"`)
		b, err := os.ReadFile(disk.path)
		if err != nil {
			t.Fatal(err)
		}
		return map[string][]byte{"disk0": b}
	}

	qemuCycle(t, a, v, "first", content())
	hmp(fmt.Sprintf(`qemu-io -d /machine/peripheral/ua-disk0/virtio-backend "write -P 0x5a %d %d"`, 3<<20, 64<<10))
	s, p := qemuCycle(t, a, v, "after a write", content())
	if s.LastCycle.ReadBytes == 0 || s.LastCycle.ReadBytes > int64(v.Config().ChunkSize)+64<<10 || p.Tags["full_read"] != "" {
		t.Fatalf("second point read %d bytes for 64 KiB written; tags %v", s.LastCycle.ReadBytes, p.Tags)
	}

	virsh("destroy", name)
	virsh("define", def) // defined, shut off
	if _, err := qmp.DialLibvirt(context.Background(), sock, name); !errors.Is(err, qmp.ErrNotRunning) {
		t.Fatalf("a shut-off domain: %v, want ErrNotRunning", err)
	}
	if err := a.Cycle(context.Background(), "m1"); err == nil {
		t.Fatal("a cycle of a shut-off domain passed")
	}
	if _, err := qmp.DialLibvirt(context.Background(), sock, "hv-no-such-domain"); err == nil {
		t.Fatal("an unknown domain was accepted")
	}
}
