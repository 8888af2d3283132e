package debimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
)

// vm is one QEMU run of a copy of the image, as a test drives it.
type vm struct {
	t       testing.TB
	prog    string
	args    []string
	accel   string
	cmd     *exec.Cmd
	dir     string
	console string
	qmp     string
	qga     string
	exited  chan struct{} // closed when QEMU has exited
	waitErr error         // set before exited is closed
	started time.Time
}

type vmOpts struct {
	firmware string   // "bios" (SeaBIOS, QEMU's default) or "uefi" (OVMF)
	netns    string   // run QEMU inside this network namespace
	extra    []string // more QEMU arguments (NICs, a seed disk)
}

const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS.fd"
)

// kvmBroken is set once KVM failed a firmware boot: later boots of this
// process go to TCG straight away.
var kvmBroken atomic.Bool

// accel is kvm when /dev/kvm can be opened (and has not failed a firmware
// boot), else tcg; HAVEN_TEST_ACCEL forces one.
func accel() string {
	if a := os.Getenv("HAVEN_TEST_ACCEL"); a != "" {
		return a
	}
	if kvmBroken.Load() {
		return "tcg"
	}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		return "kvm"
	}
	return "tcg"
}

// bootVM starts QEMU on disk. It is killed and its files removed when the
// test ends, whatever happened.
func bootVM(t testing.TB, disk string, o vmOpts) *vm {
	t.Helper()
	qemu := testenv.LookPath(t, "qemu-system-x86_64")
	dir := t.TempDir()
	v := &vm{t: t, dir: dir, console: filepath.Join(dir, "console.log"),
		qmp: filepath.Join(dir, "qmp.sock"), qga: filepath.Join(dir, "qga.sock")}
	args := []string{"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-m", "1024", "-smp", "2",
		"-drive", "file=" + disk + ",format=raw,if=virtio",
		"-serial", "file:" + v.console,
		"-qmp", "unix:" + v.qmp + ",server=on,wait=off",
		"-device", "virtio-serial",
		"-chardev", "socket,id=qga0,path=" + v.qga + ",server=on,wait=off",
		"-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
	}
	switch o.firmware {
	case "uefi":
		if _, err := os.Stat(ovmfCode); err != nil {
			testenv.Missing(t, "OVMF (package ovmf): %v", err)
		}
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(ovmfVars, vars); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	case "bios", "":
	default:
		t.Fatalf("firmware %q", o.firmware)
	}
	args = append(args, o.extra...)
	v.prog, v.args = qemu, args
	if o.netns != "" {
		v.prog, v.args = "ip", append([]string{"netns", "exec", o.netns, qemu}, args...)
	}
	v.start(accel())
	t.Cleanup(v.kill)
	return v
}

func (v *vm) start(accel string) {
	v.t.Helper()
	os.Remove(v.console)
	v.accel = accel
	v.cmd = exec.Command(v.prog, append(v.args, "-accel", accel)...)
	v.cmd.Stdout, v.cmd.Stderr = &lockedTail{}, &lockedTail{}
	v.exited = make(chan struct{})
	v.started = time.Now()
	if err := v.cmd.Start(); err != nil {
		v.t.Fatal(err)
	}
	go func(cmd *exec.Cmd, exited chan struct{}) { v.waitErr = cmd.Wait(); close(exited) }(v.cmd, v.exited)
}

// kvmFailed reports the KVM of some nested hosts stopping a firmware boot
// with an emulation failure (seen here with syslinux's protected-mode IRET
// and OVMF's FINIT, while direct kernel boots work): QEMU then pauses the
// guest rather than exiting.
func (v *vm) kvmFailed() bool {
	return v.accel == "kvm" && strings.Contains(v.cmd.Stderr.(*lockedTail).String(), "KVM internal error")
}

// waitReady waits for the image's readiness marker on the serial console
// and returns how long the boot took.
func (v *vm) waitReady(timeout time.Duration) time.Duration {
	v.t.Helper()
	deadline := time.After(timeout)
	for {
		b, _ := os.ReadFile(v.console)
		if strings.Contains(string(b), ReadyMarker) {
			return time.Since(v.started)
		}
		if v.kvmFailed() {
			v.t.Logf("KVM cannot run this firmware boot here (emulation failure); falling back to TCG")
			kvmBroken.Store(true)
			v.kill()
			v.start("tcg")
			continue
		}
		select {
		case <-v.exited:
			v.t.Fatalf("qemu exited before %q: %v\nstderr: %s\nconsole tail:\n%s", ReadyMarker, v.waitErr,
				v.cmd.Stderr, testenv.Tail(b))
		case <-deadline:
			v.t.Fatalf("no %q on the console after %v; console tail:\n%s", ReadyMarker, timeout, testenv.Tail(b))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// powerdown asks the guest to shut down over QMP (ACPI) and waits for
// QEMU to exit; a guest that ignores it fails the test.
func (v *vm) powerdown(timeout time.Duration) {
	v.t.Helper()
	if _, err := command(v.qmp, `{"execute":"qmp_capabilities"}`, `{"execute":"system_powerdown"}`); err != nil {
		v.t.Fatalf("qmp system_powerdown: %v", err)
	}
	select {
	case <-v.exited:
	case <-time.After(timeout):
		b, _ := os.ReadFile(v.console)
		v.t.Fatalf("guest did not power off within %v; console tail:\n%s", timeout, testenv.Tail(b))
	}
}

func (v *vm) kill() {
	v.cmd.Process.Kill() // an error only says it has exited already
	<-v.exited
}

func (v *vm) consoleText() string {
	b, _ := os.ReadFile(v.console)
	return string(b)
}

// guestPing waits for qemu-guest-agent to answer on its virtio-serial
// port: udev must have started it when the port appeared.
func (v *vm) guestPing(timeout time.Duration) {
	v.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		reply, err := command(v.qga, `{"execute":"guest-ping"}`)
		if err == nil && strings.Contains(reply, `"return"`) {
			return
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("guest agent did not answer guest-ping within %v: %v %q", timeout, err, reply)
		}
		time.Sleep(time.Second)
	}
}
