package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/vnet"
)

// machineFile describes one machine to run outside the server: a
// primary-site machine on the ns driver started and stopped by the agent's
// control hooks, or a recovered machine the server runs detached so that
// it outlives a server restart (`haven machine start|stop`).
type machineFile struct{ host.MachineFile }

func (f *machineFile) Attachment(network string) (vnet.Attachment, error) {
	a, ok := f.Networks[network]
	if !ok {
		return vnet.Attachment{}, fmt.Errorf("%w: network %q not in the machine file", vnet.ErrUnknown, network)
	}
	return a, nil
}

func loadMachineFile(path string) (*machineFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError(err.Error())
	}
	var f machineFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, usageError(fmt.Sprintf("%s: %v", path, err))
	}
	if f.PIDFile == "" || f.StateDir == "" {
		return nil, usageError(path + ": pid_file and state_dir are required")
	}
	return &f, nil
}

func newMachineCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "machine",
		Short: "Run one machine (ns or qemu driver) in the foreground, or start/stop it in the background (agent hooks)",
	}
	c.AddCommand(machineRunCmd(), machineStartCmd(), machineStopCmd())
	return c
}

func machineRunCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "run --file machine.json",
		Short: "Boot the machine and keep it running until SIGTERM (then stop it gracefully)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := loadMachineFile(path)
			if err != nil {
				return err
			}
			lock, ok, err := host.TakeRunLock(f.PIDFile)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("machine %s is already running (%s is held)", f.Machine.Name, host.LockPath(f.PIDFile))
			}
			defer lock.Close()
			// Holding the lock, no other runner lives: state left by one
			// that was killed is stale.
			if err := host.ClearLeftover(f.Driver, f.StateDir, f.Machine.Name); err != nil {
				return err
			}
			d, err := host.NewDriver(f.Driver, f, f.StateDir, f.QEMUBoot, f.Machine)
			if err != nil {
				return err
			}
			m, err := d.Start(cmd.Context(), f.Machine)
			if err != nil {
				return err
			}
			if err := os.WriteFile(f.PIDFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
				m.Stop(context.Background())
				return err
			}
			defer os.Remove(f.PIDFile)
			select {
			case <-cmd.Context().Done():
				ctx, cancel := context.WithTimeout(context.Background(), f.Machine.StopTimeout+30*time.Second)
				defer cancel()
				return m.Stop(ctx)
			case <-m.Done():
				return errors.New("machine stopped by itself")
			}
		},
	}
	c.Flags().StringVar(&path, "file", "", "machine file (JSON)")
	_ = c.MarkFlagRequired("file")
	return c
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

func machineStartCmd() *cobra.Command {
	var path string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "start --file machine.json",
		Short: "Start `haven machine run` detached; returns once the machine runs (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := loadMachineFile(path)
			if err != nil {
				return err
			}
			if host.RunLockHeld(f.PIDFile) {
				return waitRunning(f, wait, nil)
			}
			logPath := f.Log
			if logPath == "" {
				logPath = filepath.Join(f.StateDir, f.Machine.Name+".run.log")
			}
			os.MkdirAll(filepath.Dir(logPath), 0o755)
			lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			defer lf.Close()
			self, _ := os.Executable()
			run := exec.Command(self, "machine", "run", "--file", path)
			run.Stdout, run.Stderr = lf, lf
			run.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := run.Start(); err != nil {
				return err
			}
			exited := make(chan error, 1)
			go func() { exited <- run.Wait() }()
			if err := waitRunning(f, wait, exited); err != nil {
				run.Process.Kill()
				return fmt.Errorf("%w: %s (see %s)", err, lastLine(logPath), logPath)
			}
			return nil
		},
	}
	c.Flags().StringVar(&path, "file", "", "machine file (JSON)")
	c.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the machine to run")
	_ = c.MarkFlagRequired("file")
	return c
}

// waitRunning waits until some runner of the machine holds its lock and
// has written its pid file. A runner of ours that exits (exited) is fine
// when another one runs (two starts raced).
func waitRunning(f *machineFile, wait time.Duration, exited <-chan error) error {
	deadline := time.After(wait)
	for {
		if host.RunLockHeld(f.PIDFile) && runningPID(f.PIDFile) != 0 {
			return nil
		}
		select {
		case err := <-exited:
			if !host.RunLockHeld(f.PIDFile) {
				return fmt.Errorf("machine %s did not start (%v)", f.Machine.Name, err)
			}
			exited = nil
		case <-deadline:
			return fmt.Errorf("machine %s not running after %s", f.Machine.Name, wait)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func machineStopCmd() *cobra.Command {
	var path string
	var wait time.Duration
	c := &cobra.Command{
		Use:   "stop --file machine.json",
		Short: "Stop a machine started with `haven machine start` and wait until it is gone (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := loadMachineFile(path)
			if err != nil {
				return err
			}
			deadline := time.Now().Add(wait)
			signaled := 0
			for host.RunLockHeld(f.PIDFile) {
				// A runner still starting has no pid file yet: signal
				// it once it has one.
				if pid := runningPID(f.PIDFile); pid != 0 && pid != signaled {
					syscall.Kill(pid, syscall.SIGTERM)
					signaled = pid
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("machine %s still running after %s", f.Machine.Name, wait)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// A runner killed outright (a dead primary, SIGKILL) left its
			// machine's state and cgroup: with the run lock, nobody else
			// can be using them.
			lock, ok, err := host.TakeRunLock(f.PIDFile)
			if errors.Is(err, os.ErrNotExist) {
				return nil // never started here
			}
			if err != nil || !ok {
				return err // !ok: a new runner started meanwhile; it is not ours to stop
			}
			defer lock.Close()
			return host.ClearLeftover(f.Driver, f.StateDir, f.Machine.Name)
		},
	}
	c.Flags().StringVar(&path, "file", "", "machine file (JSON)")
	c.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the machine to stop")
	_ = c.MarkFlagRequired("file")
	return c
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
