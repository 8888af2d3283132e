package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ReadyEnv names the descriptor on which `haven machine run` says "ok"
// once its machine runs and its pid file is written. The starter learns
// it at once instead of polling the pid file, and learns of a runner that
// died starting by the pipe's end.
const ReadyEnv = "HAVEN_MACHINE_READY_FD"

// runnerPoll is how often a stop or a start of an already-starting
// runner looks again: a runner's lock and pid file give no event to wait
// on, and each look is an open and a flock.
const runnerPoll = 5 * time.Millisecond

// StartRunner starts `exe machine run --file path` for the machine of f in
// a session of its own, so that it outlives the caller (a server restart,
// the agent's hook), and returns once the machine runs. It is idempotent:
// with a runner alive already it waits for that one instead. It is the one
// exec of a start; the caller reaps the runner while it lives.
func StartRunner(ctx context.Context, exe, path string, f MachineFile, wait time.Duration) error {
	if RunLockHeld(f.PIDFile) {
		return waitRunning(ctx, f, wait)
	}
	logPath := f.Log
	if logPath == "" {
		logPath = filepath.Join(f.StateDir, f.Machine.Name+".run.log")
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	// Not CommandContext: the caller's end must not kill the machine.
	run := exec.Command(exe, "machine", "run", "--file", path)
	run.Stdout, run.Stderr = lf, lf
	run.ExtraFiles = []*os.File{readyW}
	run.Env = append(os.Environ(), ReadyEnv+"=3")
	run.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = run.Start()
	readyW.Close() // the runner holds the only write end now: its death ends the read
	if err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	ready := make(chan bool, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(readyR, 16))
		ready <- strings.TrimSpace(string(b)) == "ok"
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case ok := <-ready:
		if ok {
			return nil
		}
		// It ended without running: lost a race to another runner of
		// the machine (then that one is awaited), or failed.
		if RunLockHeld(f.PIDFile) && runningPID(f.PIDFile) != run.Process.Pid {
			return waitRunning(ctx, f, wait)
		}
		err = fmt.Errorf("machine %s did not start (%v)", f.Machine.Name, <-exited)
	case <-timer.C:
		err = fmt.Errorf("machine %s not running after %s", f.Machine.Name, wait)
	case <-ctx.Done():
		// Left to start: the caller (a server shutting down) may be back
		// for it, and a machine must not die with its starter.
		return ctx.Err()
	}
	run.Process.Kill()
	return fmt.Errorf("%w: %s (see %s)", err, lastLine(logPath), logPath)
}

// SignalReady tells the starter (StartRunner) that the machine runs; a
// runner started otherwise (a unit's ExecStart) has no one to tell.
func SignalReady() {
	fd, err := strconv.Atoi(os.Getenv(ReadyEnv))
	if err != nil || fd < 3 {
		return
	}
	os.Unsetenv(ReadyEnv)
	f := os.NewFile(uintptr(fd), "ready")
	f.WriteString("ok\n") // a starter that went away is no error
	f.Close()
}

// HoldReady keeps the ready descriptor out of the processes the runner
// starts (the machine itself), so the starter sees its end with the
// runner's, never later. Call it first thing in the runner.
func HoldReady() {
	if fd, err := strconv.Atoi(os.Getenv(ReadyEnv)); err == nil && fd >= 3 {
		syscall.CloseOnExec(fd)
	}
}

// waitRunning waits until a runner of the machine started by someone else
// holds its lock and has written its pid file.
func waitRunning(ctx context.Context, f MachineFile, wait time.Duration) error {
	deadline := time.After(wait)
	for {
		if RunLockHeld(f.PIDFile) && runningPID(f.PIDFile) != 0 {
			return nil
		}
		if !RunLockHeld(f.PIDFile) {
			return fmt.Errorf("machine %s: its runner ended without running it", f.Machine.Name)
		}
		select {
		case <-deadline:
			return fmt.Errorf("machine %s not running after %s", f.Machine.Name, wait)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(runnerPoll):
		}
	}
}

func runningPID(pidFile string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// StopRunner stops the machine of f started with StartRunner and waits
// until its runner is gone (idempotent). A runner killed outright (a dead
// primary, SIGKILL) left its machine's state and cgroup: with the run
// lock taken after it, nobody else can be using them, and they go too.
func StopRunner(ctx context.Context, f MachineFile, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	signaled := 0
	for RunLockHeld(f.PIDFile) {
		// A runner still starting has no pid file yet: signal it once it
		// has one.
		if pid := runningPID(f.PIDFile); pid != 0 && pid != signaled {
			syscall.Kill(pid, syscall.SIGTERM)
			signaled = pid
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("machine %s still running after %s", f.Machine.Name, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(runnerPoll):
		}
	}
	lock, ok, err := TakeRunLock(f.PIDFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil // never started here
	}
	if err != nil || !ok {
		return err // !ok: a new runner started meanwhile; it is not ours to stop
	}
	defer lock.Close()
	return ClearLeftover(f.Driver, f.StateDir, f.Machine.Name)
}

// lastLine is the runner's last log line: why the machine did not start,
// which the caller (the server's job log) should show, not only point to.
func lastLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
