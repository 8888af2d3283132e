package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/haven-dr/haven/internal/host"
)

// A machine whose control names a machine_file is one Haven runs on the
// primary (`haven machine start --file`): the agent starts and stops its
// runner itself, as those commands would, without a shell and a haven
// process per order. A planned failover's outage begins with these stops.

func (c Control) validate(machine string) error {
	if c.MachineFile == "" {
		return nil
	}
	if c.Stop != "" || c.Start != "" {
		return fmt.Errorf("machine %s: control has machine_file and stop/start hooks; give one or the other", machine)
	}
	if !filepath.IsAbs(c.MachineFile) {
		return fmt.Errorf("machine %s: control.machine_file %q is not absolute", machine, c.MachineFile)
	}
	return nil
}

// has reports whether action ("stop" or "start") can be done.
func (c Control) has(action string) bool {
	if c.MachineFile != "" {
		return true
	}
	if action == "stop" {
		return c.Stop != ""
	}
	return c.Start != ""
}

// control stops or starts m through its machine file or its hook, bounded
// by the control timeout and not by the caller: a client that goes away
// must not leave a machine half shut down.
func control(ctx context.Context, m *machine, action string) error {
	c := m.cfg.Control
	if c.MachineFile == "" {
		command := c.Stop
		if action == "start" {
			command = c.Start
		}
		return runControlHook(ctx, m, action, command)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.Timeout)
	defer cancel()
	err := controlRunner(ctx, c.MachineFile, action, c.Timeout)
	if err != nil {
		return fmt.Errorf("%s %s (machine file %s): %w", action, m.cfg.Name, c.MachineFile, err)
	}
	return nil
}

func controlRunner(ctx context.Context, path, action string, wait time.Duration) error {
	f, err := host.LoadMachineFile(path)
	if err != nil {
		return err
	}
	if action == "stop" {
		return host.StopRunner(ctx, *f, wait)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return host.StartRunner(ctx, self, path, *f, wait)
}
