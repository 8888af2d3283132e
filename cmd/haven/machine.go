package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
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
	f, err := host.LoadMachineFile(path)
	if err != nil {
		return nil, usageError(err.Error())
	}
	return &machineFile{*f}, nil
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
			host.HoldReady()
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
			host.SignalReady()
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
			self, err := os.Executable()
			if err != nil {
				return err
			}
			return host.StartRunner(cmd.Context(), self, path, f.MachineFile, wait)
		},
	}
	c.Flags().StringVar(&path, "file", "", "machine file (JSON)")
	c.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the machine to run")
	_ = c.MarkFlagRequired("file")
	return c
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
			return host.StopRunner(cmd.Context(), f.MachineFile, wait)
		},
	}
	c.Flags().StringVar(&path, "file", "", "machine file (JSON)")
	c.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the machine to stop")
	_ = c.MarkFlagRequired("file")
	return c
}
