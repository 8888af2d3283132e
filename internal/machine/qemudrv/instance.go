package qemudrv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

type instance struct {
	spec    machine.Spec
	dir     string
	console string
	ops     vnet.Ops
	links   [][2]string // taps: namespace, name
	pid     int
	proc    *os.Process // signals go through its pidfd: never to a reused pid
	done    chan struct{}

	status machine.Status
}

var _ machine.Instance = (*instance)(nil)

// start runs QEMU on a locked thread that also waits for it: Pdeathsig is
// tied to the forking thread, which Go must not retire meanwhile.
func (m *instance) start(qemu string, args []string, taps []*os.File) error {
	cmd := exec.Command(qemu, args...)
	cmd.ExtraFiles = taps
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := os.OpenFile(m.console, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("run %s: %w", qemu, err)
			close(m.done)
			return
		}
		m.pid, m.proc = cmd.Process.Pid, cmd.Process
		os.WriteFile(filepath.Join(m.dir, "pid"), []byte(strconv.Itoa(m.pid)), 0o644)
		m.status.Set(machine.Running)
		started <- nil
		cmd.Wait()
		m.status.Set(machine.Stopped)
		close(m.done)
	}()
	return <-started
}

func (m *instance) Spec() machine.Spec    { return m.spec }
func (m *instance) Done() <-chan struct{} { return m.done }
func (m *instance) ConsoleLog() string    { return m.console }

func (m *instance) State() machine.State { return m.status.Get() }

// Stop presses the ACPI power button over QMP, kills QEMU after the
// timeout, and removes the taps and state.
func (m *instance) Stop(ctx context.Context) error {
	select {
	case <-m.done:
		return m.cleanup()
	default:
	}
	m.status.Set(machine.Stopping)
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := qmp(qctx, filepath.Join(m.dir, "qmp.sock"), "system_powerdown")
	cancel()
	t := time.NewTimer(m.spec.StopTimeout)
	defer t.Stop()
	if err != nil {
		t.Reset(0) // no monitor: nothing graceful left to try
	}
	select {
	case <-m.done:
	case <-t.C:
		m.proc.Signal(syscall.SIGKILL)
	case <-ctx.Done():
		m.proc.Signal(syscall.SIGKILL)
	}
	<-m.done
	return m.cleanup()
}

func (m *instance) cleanup() error {
	if err := m.removeLinks(); err != nil {
		return err
	}
	return os.RemoveAll(m.dir)
}

// removeLinks deletes the taps (normally gone with QEMU's descriptors).
func (m *instance) removeLinks() error {
	for _, l := range m.links {
		if err := m.ops.DelLink(l[0], l[1]); err != nil {
			return fmt.Errorf("qemu: %s: %w", m.spec.Name, err)
		}
	}
	return nil
}
