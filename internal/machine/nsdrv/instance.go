package nsdrv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
	"github.com/haven-dr/haven/internal/vnet"
)

type instance struct {
	spec        machine.Spec
	dir         string
	console     string
	pid         int
	proc        *os.Process // signals go through its pidfd: never to a reused pid
	loops       []loopRef
	stopSig     syscall.Signal
	systemd     bool          // the init is systemd
	cgroup      string        // the machine's cgroup on the host; "" without cgroup2
	limits      *limits       // nil: no CPU or memory limit
	consoleDone chan struct{} // closed once the console log has everything
	syncW       *os.File
	ops         vnet.Ops
	links       [][2]string // bridge-side veths: namespace, name
	done        chan struct{}

	status machine.Status

	memMu   sync.Mutex
	lastMem *machine.MemoryStatus

	cleanMu sync.Mutex
	cleaned bool // host resources released: later Stops must not look again
}

// loopRef names a machine's loop device by number and tag: the number alone
// may belong to another machine by the time Stop looks.
type loopRef struct {
	n   int
	tag string
}

var (
	_ machine.Instance       = (*instance)(nil)
	_ machine.MemoryReporter = (*instance)(nil)
)

func (m *instance) run(cmd *exec.Cmd, started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		started <- fmt.Errorf("spawn: %w", err)
		close(m.done)
		return
	}
	m.pid, m.proc = cmd.Process.Pid, cmd.Process
	// The start time lets cleanup tell the machine from a later process
	// that reused its pid.
	if o, ok := vnet.OwnerOf(m.pid); ok {
		os.WriteFile(filepath.Join(m.dir, "pid"), []byte(o.String()), 0o644)
	}
	started <- nil
	cmd.Wait()
	m.status.Set(machine.Stopped)
	close(m.done)
}

// release lets the child exec the disk's init.
func (m *instance) release() {
	m.syncW.Write([]byte("go"))
	m.syncW.Close()
	m.status.Set(machine.Running)
}

func (m *instance) kill() {
	m.syncW.Close()
	m.proc.Signal(syscall.SIGKILL)
	<-m.done
	m.cleanup()
}

func (m *instance) Spec() machine.Spec    { return m.spec }
func (m *instance) Done() <-chan struct{} { return m.done }
func (m *instance) ConsoleLog() string    { return m.console }

func (m *instance) State() machine.State { return m.status.Get() }

// Stop signals init, kills it after the timeout, then waits until the
// kernel has unmounted the disks and detached their loop devices.
func (m *instance) Stop(ctx context.Context) error {
	select {
	case <-m.done: // already gone: never signal a pid that may be reused
		return m.cleanup()
	default:
	}
	m.status.Set(machine.Stopping)
	m.proc.Signal(m.stopSig)
	t := time.NewTimer(m.spec.StopTimeout)
	defer t.Stop()
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

// cleanup waits for autoclear to detach the loop devices (the kernel does
// it once the dying mount namespace drops the last mount), then removes
// the state directory. Once it has succeeded it does nothing: a second
// Stop must not wait on loop numbers other machines may hold by then.
func (m *instance) cleanup() error {
	m.cleanMu.Lock()
	defer m.cleanMu.Unlock()
	if m.cleaned {
		return nil
	}
	// The kernel tears a dead namespace's veths down asynchronously;
	// delete the bridge sides now so the names are free for a restart.
	for _, l := range m.links {
		if err := m.ops.DelLink(l[0], l[1]); err != nil {
			return fmt.Errorf("ns: %s: %w", m.spec.Name, err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	m.keepMemory()
	if err := m.limits.remove(deadline); err != nil {
		return fmt.Errorf("ns: %s: %w", m.spec.Name, err)
	}
	if m.cgroup != "" {
		if err := removeCgroup(m.cgroup, deadline); err != nil {
			return fmt.Errorf("ns: %s: %w", m.spec.Name, err)
		}
	}
	select {
	case <-m.consoleDone:
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("ns: %s: console still held open", m.spec.Name)
	}
	for _, l := range m.loops {
		for !loop.Gone(l.n, l.tag) {
			if time.Now().After(deadline) {
				return fmt.Errorf("ns: %s: loop%d still attached", m.spec.Name, l.n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := os.RemoveAll(m.dir); err != nil {
		return err
	}
	m.cleaned = true
	return nil
}
