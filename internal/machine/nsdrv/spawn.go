package nsdrv

import (
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/machine/loop"
)

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
		if m.cgroup, cgDir, err = makeCgroup(root, dir, spec.Name); err != nil {
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
