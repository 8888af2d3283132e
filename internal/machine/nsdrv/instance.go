package nsdrv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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
	consoleDone chan struct{} // closed once the console log has everything
	syncW       *os.File
	ops         vnet.Ops
	links       [][2]string // bridge-side veths: namespace, name
	done        chan struct{}

	status machine.Status

	cleanMu sync.Mutex
	cleaned bool // host resources released: later Stops must not look again
}

// loopRef names a machine's loop device by number and tag: the number alone
// may belong to another machine by the time Stop looks.
type loopRef struct {
	n   int
	tag string
}

var _ machine.Instance = (*instance)(nil)

// spawn starts the child in new namespaces (in the machine's cgroup, when
// the host has cgroup2) and waits until its root is mounted. The child is
// started and waited for on one locked OS thread: Pdeathsig fires when the
// thread that forked dies, and Go may retire any unlocked thread.
func (d *Driver) spawn(spec machine.Spec, dir string, ds disks, seed string) (*instance, error) {
	log, consolePath, err := openConsole(spec, dir)
	if err != nil {
		return nil, err
	}
	master, slave, err := openPTY()
	if err != nil {
		log.Close()
		return nil, err
	}
	defer slave.Close()
	m := &instance{spec: spec, dir: dir, console: consolePath, ops: d.ops(),
		done: make(chan struct{}), consoleDone: make(chan struct{})}
	go copyConsole(master, log, m.done, m.consoleDone)
	var cgDir *os.File
	if root := cgroup2Root(); root != "" {
		if m.cgroup, cgDir, err = makeCgroup(root, spec.Name); err != nil {
			m.abandon(slave)
			return nil, err
		}
		defer cgDir.Close()
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		m.abandon(slave)
		return nil, err
	}
	statR, statW, err := os.Pipe()
	if err != nil {
		syncR.Close()
		syncW.Close()
		m.abandon(slave)
		return nil, err
	}
	defer statR.Close()
	cfg := childConf(spec, dir, ds, slave.Name(), m.cgroup != "", seed)
	cmd := childCmd(spec, cfg, ds.devs, slave, syncR, statW, cgDir)
	m.syncW = syncW
	m.status.Set(machine.Starting)
	for i, l := range ds.devs {
		m.loops = append(m.loops, loopRef{l.Number, loopTag(spec, ds, i)})
	}
	started := make(chan error, 1)
	go m.run(cmd, started)
	err = <-started
	syncR.Close()
	statW.Close()
	slave.Close() // the console log ends when the machine's last holder goes
	// The child holds its own copies now, and only its mounts may keep
	// the devices: if it dies early, autoclear must not wait for us.
	ds.close()
	if err != nil {
		syncW.Close()
		m.cleanup()
		return nil, err
	}
	info, err := readStatus(statR)
	if err != nil {
		m.kill()
		return nil, err
	}
	m.systemd = info == "systemd"
	m.stopSig = d.StopSignal
	if m.stopSig == 0 {
		m.stopSig = syscall.SIGTERM
		if m.systemd {
			m.stopSig = SIGRTMIN3
		}
	}
	return m, nil
}

// SIGRTMIN+3 asks systemd for a clean halt (what "machinectl poweroff"
// and container managers send). glibc's SIGRTMIN is 34.
const SIGRTMIN3 = syscall.Signal(34 + 3)

// abandon undoes a spawn that failed before the child started.
func (m *instance) abandon(slave *os.File) {
	slave.Close()
	close(m.done)
	<-m.consoleDone
	if m.cgroup != "" {
		removeCgroup(m.cgroup, time.Now().Add(10*time.Second))
	}
}

func loopTag(spec machine.Spec, ds disks, i int) string {
	n := 0
	for _, mt := range ds.mounts {
		for _, d := range mt.Devs {
			if n == i {
				tag := mt.Disk
				if d.Part != 0 {
					tag += ".p" + strconv.Itoa(d.Part)
				}
				return LoopName(spec.Name, tag)
			}
			n++
		}
	}
	return ""
}

func childCmd(spec machine.Spec, cfg childConfig, devs []*loop.Device, console, syncR, statW, cgDir *os.File) *exec.Cmd {
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"haven-ns:" + spec.Name}
	cmd.Env = []string{childEnv + "=" + encodeConf(cfg)}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = console, console, console
	cmd.ExtraFiles = []*os.File{syncR, statW}
	for _, l := range devs {
		cmd.ExtraFiles = append(cmd.ExtraFiles, l.File())
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS |
			syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
		Setsid:    true,
		Pdeathsig: syscall.SIGKILL,
	}
	if cgDir != nil {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(cgDir.Fd())
	}
	return cmd
}

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
