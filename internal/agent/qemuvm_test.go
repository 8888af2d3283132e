package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/qmp"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// testVM is a real qemu-system-x86_64, paused (-S: no guest is needed to
// exercise the block layer), with virtio-blk disks. The agent has its own
// QMP socket; the test drives "guest writes" through a second one with
// HMP qemu-io, which marks dirty bitmaps as guest writes do.
type testVM struct {
	t       testing.TB
	dir     string
	disks   []vmDisk
	cmd     *exec.Cmd
	AgentQ  string // the agent's QMP socket
	testQ   string
	mon     *qmp.Client
	exited  chan struct{}
	qemuBin string
}

type vmDisk struct {
	id, path, format string
}

func startVM(t testing.TB, disks ...vmDisk) *testVM {
	t.Helper()
	dir, err := os.MkdirTemp("", "hv-vm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	vm := &testVM{t: t, dir: dir, disks: disks, AgentQ: filepath.Join(dir, "agent.qmp"), testQ: filepath.Join(dir, "test.qmp"),
		qemuBin: testenv.LookPath(t, "qemu-system-x86_64")}
	testenv.LookPath(t, "qemu-img")
	vm.start()
	t.Cleanup(vm.kill)
	return vm
}

func (vm *testVM) start() {
	t := vm.t
	t.Helper()
	args := []string{"-S", "-nodefaults", "-display", "none", "-machine", "accel=tcg", "-m", "64",
		"-qmp", "unix:" + vm.AgentQ + ",server=on,wait=off", "-qmp", "unix:" + vm.testQ + ",server=on,wait=off"}
	for _, d := range vm.disks {
		args = append(args, "-drive", fmt.Sprintf("file=%s,format=%s,if=none,id=%s", d.path, d.format, d.id),
			"-device", "virtio-blk-pci,drive="+d.id)
	}
	vm.cmd = exec.Command(vm.qemuBin, args...)
	vm.cmd.Stderr = os.Stderr
	if err := vm.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	vm.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(vm.cmd, vm.exited)
	ctx := context.Background()
	for i := 0; ; i++ {
		var err error
		if vm.mon, err = qmp.Dial(ctx, vm.testQ); err == nil {
			break
		}
		if i > 500 {
			t.Fatalf("QEMU's monitor: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill ends QEMU at once (as a crash would).
func (vm *testVM) kill() {
	if vm.cmd == nil {
		return
	}
	vm.mon.Close()
	vm.cmd.Process.Kill()
	<-vm.exited
	vm.cmd = nil
}

func (vm *testVM) restart() { vm.kill(); vm.start() }

// hmp runs a human monitor command and fails on an error in its output.
func (vm *testVM) hmp(cmd string) string {
	vm.t.Helper()
	var out string
	if err := vm.mon.Execute(context.Background(), "human-monitor-command", map[string]any{"command-line": cmd}, &out); err != nil {
		vm.t.Fatalf("%s: %v", cmd, err)
	}
	if strings.Contains(strings.ToLower(out), "error") || strings.Contains(out, "failed") {
		vm.t.Fatalf("%s: %s", cmd, out)
	}
	return out
}

// write is a guest write of n bytes of pattern at off, through QEMU.
func (vm *testVM) write(disk string, pattern byte, off, n int64) {
	vm.hmp(fmt.Sprintf(`qemu-io %s "write -P 0x%x %d %d"`, disk, pattern, off, n))
}

// content is the disk's guest-visible bytes now: flushed (QEMU caches
// qcow2 metadata), then read with qemu-img -U (an image in use).
func (vm *testVM) content(i int) []byte {
	vm.t.Helper()
	d := vm.disks[i]
	vm.hmp(fmt.Sprintf(`qemu-io %s "flush"`, d.id))
	out := filepath.Join(vm.dir, d.id+".ref")
	defer os.Remove(out)
	if b, err := exec.Command("qemu-img", "convert", "-U", "-f", d.format, "-O", "raw", d.path, out).CombinedOutput(); err != nil {
		vm.t.Fatalf("qemu-img convert: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		vm.t.Fatal(err)
	}
	return b
}

// mkDisk makes a disk image of size with 64 KiB of data at 5 or 6 places
// (aligned: the rest reads as zeros, holes in raw, unallocated in qcow2).
func mkDisk(t *testing.T, dir, id, format string, size int64) vmDisk {
	t.Helper()
	raw := filepath.Join(dir, id+".raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	blk := bytes.Repeat([]byte(id), 64<<10/len(id))
	for off := int64(0); off < size; off += size / 5 / (64 << 10) * (64 << 10) {
		f.WriteAt(blk, off)
	}
	f.Close()
	if format == "raw" {
		return vmDisk{id: id, path: raw, format: "raw"}
	}
	q := filepath.Join(dir, id+".qcow2")
	if b, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, q).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, b)
	}
	os.Remove(raw)
	return vmDisk{id: id, path: q, format: "qcow2"}
}

// qemuConfig protects the VM as machine m1 with provider qemu.
func qemuConfig(t *testing.T, vm *testVM, extra string) *Config {
	t.Helper()
	cfg, err := ParseConfig(fmt.Sprintf(`
vault: /unused
state_dir: %s
machines:
  - name: m1
    provider: qemu
    qmp: %s
%s    policy: {frequency: 15s, rpo_alert: 60s}
`, filepath.Join(vm.dir, "state"), vm.AgentQ, extra))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// restored is disk of the newest point of m1, restored.
func restored(t *testing.T, v *vault.Vault, disk string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored")
	if _, err := v.Restore(context.Background(), vault.RestoreOptions{Machine: "m1", Disk: disk, Target: out}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
