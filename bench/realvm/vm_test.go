// Package realvm measures Haven against real machines: the RPO the agent's
// qemu provider holds while a Debian VM writes to its data disk, against
// reading the disk whole each cycle, and the time from Start to a health
// check for the Debian test image under each driver. Benchmarks only (no
// Test functions: nothing here runs without -bench). Run as root:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./bench/realvm/
//
// Results and method: docs/realvm-bench.md.
package realvm

import (
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
	"github.com/haven-dr/haven/internal/testenv/debimage"
)

// dataDevice is the data disk's QEMU drive id and virtio serial, so the
// guest finds it at /dev/disk/by-id/virtio-<serial> whatever the order.
const dataDevice = "hvdata"

// benchVM is the Debian test image booted by its own firmware (SeaBIOS)
// with a second raw disk, two QMP monitors (one for the agent, one for
// the benchmark: a monitor socket serves one client) and a guest agent.
type benchVM struct {
	dir, console      string
	agentQMP, benchQM string
	qga               string
	accel             string
	cmd               *exec.Cmd
	exited            chan struct{}
	stderr            strings.Builder
}

// bootVM starts QEMU on root and data and waits until the image reports
// PostgreSQL ready and the guest agent answers. QEMU is killed when the
// benchmark ends, whatever happened.
func bootVM(b *testing.B, root, data, accel string) *benchVM {
	b.Helper()
	qemu := testenv.LookPath(b, "qemu-system-x86_64")
	testenv.LookPath(b, "qemu-img") // the agent's qemu provider makes overlays with it
	dir, err := os.MkdirTemp("", "hvrealvm")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	v := &benchVM{dir: dir, console: filepath.Join(dir, "console.log"), accel: accel,
		agentQMP: filepath.Join(dir, "agent.qmp"), benchQM: filepath.Join(dir, "bench.qmp"),
		qga: filepath.Join(dir, "qga.sock"), exited: make(chan struct{})}
	args := []string{"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", "q35", "-accel", accel, "-m", "1024", "-smp", "2",
		"-drive", "if=none,id=root,format=raw,file=" + root, "-device", "virtio-blk-pci,drive=root,bootindex=0",
		"-drive", "if=none,id=" + dataDevice + ",format=raw,file=" + data,
		"-device", "virtio-blk-pci,drive=" + dataDevice + ",serial=" + dataDevice,
		"-serial", "file:" + v.console,
		"-qmp", "unix:" + v.agentQMP + ",server=on,wait=off",
		"-qmp", "unix:" + v.benchQM + ",server=on,wait=off",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=qga0,server=on,wait=off,path=" + v.qga,
		"-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
	}
	v.cmd = exec.Command(qemu, args...)
	v.cmd.Stdout, v.cmd.Stderr = &v.stderr, &v.stderr
	if err := v.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { v.cmd.Wait(); close(v.exited) }()
	b.Cleanup(v.kill)
	v.waitReady(b, 15*time.Minute)
	return v
}

func (v *benchVM) kill() {
	select {
	case <-v.exited:
	default:
		v.cmd.Process.Kill()
		<-v.exited
	}
}

func (v *benchVM) waitReady(b *testing.B, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		log, _ := os.ReadFile(v.console)
		if strings.Contains(string(log), debimage.ReadyMarker) {
			break
		}
		select {
		case <-v.exited:
			b.Fatalf("qemu exited before the image was ready: %s\nconsole tail:\n%s", v.stderr.String(), testenv.Tail(log))
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Fatalf("no %q after %v (accel %s); console tail:\n%s", debimage.ReadyMarker, timeout, v.accel, testenv.Tail(log))
		}
	}
	// qemu-guest-agent starts when udev sees its port, about when
	// PostgreSQL is ready; give it a little longer.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := qmp.DialGuest(dctx, v.qga)
		dcancel()
		if err == nil {
			c.Close()
			return
		}
		if ctx.Err() != nil {
			b.Fatalf("guest agent: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// written is what the guest has written to the data disk so far, as QEMU
// counts it (query-blockstats): the writer's rate is checked by this,
// not by what the writer meant to do.
func (v *benchVM) written(b *testing.B) int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := qmp.Dial(ctx, v.benchQM)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var stats []struct {
		Device string `json:"device"`
		Qdev   string `json:"qdev"`
		Stats  struct {
			WrBytes int64 `json:"wr_bytes"`
		} `json:"stats"`
	}
	if err := c.Execute(ctx, "query-blockstats", nil, &stats); err != nil {
		b.Fatal(err)
	}
	for _, s := range stats {
		if s.Device == dataDevice {
			return s.Stats.WrBytes
		}
	}
	b.Fatalf("query-blockstats: no device %s in %+v", dataDevice, stats)
	return 0
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
