package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrPaused is returned by Cycle when a member of the group is stopped
// through the control API: its replication waits for start.
var ErrPaused = errors.New("replication paused")

// Control is a machine's stop/start hooks, shell commands run through
// /bin/sh with $HAVEN_MACHINE set, or instead the machine file of a
// machine Haven runs (control_machine.go). They must be idempotent: a
// stop of a stopped machine runs the stop hook again and must succeed.
type Control struct {
	Stop        string        `yaml:"stop"`
	Start       string        `yaml:"start"`
	MachineFile string        `yaml:"machine_file"`
	Timeout     time.Duration `yaml:"timeout"`
}

// turn lets one cycle or control operation at a time work on a group's
// disks; unlike a mutex, waiting for it honours a context.
type turn struct {
	once sync.Once
	ch   chan struct{}
}

func (t *turn) take(ctx context.Context) error {
	t.once.Do(func() { t.ch = make(chan struct{}, 1) })
	select {
	case t.ch <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the group's running cycle: %w", ctx.Err())
	}
}

func (t *turn) give() { <-t.ch }

// Cycle takes one recovery point of every machine in the consistency group
// (all captured at one instant), then prunes if a member's retention is
// due. Run calls it on the policy's schedule; tests call it directly. It
// waits for a control operation on the group, and skips the group with
// ErrPaused while a member is stopped.
func (a *Agent) Cycle(ctx context.Context, groupName string) error {
	g := a.group(groupName)
	if g == nil {
		return fmt.Errorf("%w: %q", ErrNoGroup, groupName)
	}
	if err := g.turn.take(ctx); err != nil {
		return err
	}
	defer g.turn.give()
	for _, m := range g.machines {
		if paused, _ := a.ctlOf(m); paused {
			return fmt.Errorf("%w: machine %s is stopped", ErrPaused, m.cfg.Name)
		}
	}
	return a.cycleNow(ctx, groupName)
}

// ctlError carries the HTTP status of a control failure.
type ctlError struct {
	code int
	err  error
}

func (e *ctlError) Error() string { return e.err.Error() }
func (e *ctlError) Unwrap() error { return e.err }

func ctlErrorf(code int, format string, args ...any) error {
	return &ctlError{code: code, err: fmt.Errorf(format, args...)}
}

// machineNamed finds a configured machine and its group.
func (a *Agent) machineNamed(name string) (*machine, *group, error) {
	for _, g := range a.groups {
		for _, m := range g.machines {
			if m.cfg.Name == name {
				return m, g, nil
			}
		}
	}
	return nil, nil, ctlErrorf(http.StatusNotFound, "machine %q is not configured on this agent", name)
}

// StopMachine pauses the machine's replication, waits for a cycle of its
// group that is running, then runs the stop hook. A failed hook puts the
// replication back as it was.
func (a *Agent) StopMachine(ctx context.Context, name string) error {
	m, g, err := a.machineNamed(name)
	if err != nil {
		return err
	}
	if !m.cfg.Control.has("stop") {
		return ctlErrorf(http.StatusConflict, "machine %s has no control.stop hook in the agent's config", name)
	}
	wasPaused, wasStopped := a.ctlOf(m)
	// Paused before waiting, so no new cycle starts meanwhile; on disk, so
	// an agent restart does not resume replicating a fenced machine.
	if err := a.setCtl(m, true, wasStopped); err != nil {
		return err
	}
	if err := g.turn.take(ctx); err != nil {
		a.setCtl(m, wasPaused, wasStopped)
		return ctlErrorf(http.StatusServiceUnavailable, "stop %s: %v", name, err)
	}
	defer g.turn.give()
	if err := control(ctx, m, "stop"); err != nil {
		a.setCtl(m, wasPaused, wasStopped)
		return err
	}
	return a.setCtl(m, true, true)
}

// StartMachine runs the start hook, then resumes replication. A failed
// hook leaves the machine stopped, so a restore or a retry is still
// possible.
func (a *Agent) StartMachine(ctx context.Context, name string) error {
	m, g, err := a.machineNamed(name)
	if err != nil {
		return err
	}
	if !m.cfg.Control.has("start") {
		return ctlErrorf(http.StatusConflict, "machine %s has no control.start hook in the agent's config", name)
	}
	if err := g.turn.take(ctx); err != nil {
		return ctlErrorf(http.StatusServiceUnavailable, "start %s: %v", name, err)
	}
	defer g.turn.give()
	if err := control(ctx, m, "start"); err != nil {
		return err
	}
	return a.setCtl(m, false, false)
}

// SnapshotMachine takes a point of the machine's group now, paused or not
// (after a stop it is the planned failover's final point), through the
// same cycle as the schedule, and returns every member's new point ID.
func (a *Agent) SnapshotMachine(ctx context.Context, name string) (map[string]string, error) {
	_, g, err := a.machineNamed(name)
	if err != nil {
		return nil, err
	}
	if a.Vault() == nil {
		return nil, ctlErrorf(http.StatusServiceUnavailable, "the vault is not open yet")
	}
	if err := g.turn.take(ctx); err != nil {
		return nil, ctlErrorf(http.StatusServiceUnavailable, "snapshot %s: %v", name, err)
	}
	defer g.turn.give()
	before := map[string]string{}
	for _, m := range g.machines {
		before[m.cfg.Name] = a.board.lastPointID(m.slot)
	}
	if err := a.cycleNow(ctx, g.name); err != nil {
		return nil, fmt.Errorf("snapshot of group %s: %w", g.name, err)
	}
	out := map[string]string{}
	for _, m := range g.machines {
		id := a.board.lastPointID(m.slot)
		if id == "" || id == before[m.cfg.Name] {
			return nil, fmt.Errorf("snapshot of group %s: no new point of %s", g.name, m.cfg.Name)
		}
		out[m.cfg.Name] = id
	}
	return out, nil
}

func (b *statusBoard) lastPointID(i int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.machines[i].LastPoint; p != nil {
		return p.ID
	}
	return ""
}

// runControlHook runs a stop/start hook in its own process group, killed
// whole at the timeout. The caller's cancellation does not stop it: a
// client that goes away must not leave a machine half shut down.
func runControlHook(ctx context.Context, m *machine, action, command string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.Control.Timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), "HAVEN_MACHINE="+m.cfg.Name, "HAVEN_ACTION="+action)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second // a child that keeps the output open must not hang us
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 1000 {
			msg = msg[len(msg)-1000:]
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", m.cfg.Control.Timeout)
		}
		return fmt.Errorf("%s hook of %s (%q): %w: %s", action, m.cfg.Name, command, err, msg)
	}
	return nil
}
