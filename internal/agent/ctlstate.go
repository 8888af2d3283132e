package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
)

// ctlState is what the control API did to a machine. It is kept in the
// state dir: a machine fenced by the server must stay paused when the
// agent restarts, or the old primary would resume writing points of a
// machine that now runs at the recovery site.
type ctlState struct {
	once    sync.Once
	mu      sync.Mutex
	paused  bool // no scheduled cycle of its group (set as soon as a stop is asked)
	stopped bool // the stop hook succeeded and no start since
}

type ctlFile struct {
	Paused  bool `json:"paused"`
	Stopped bool `json:"stopped"`
}

func (a *Agent) ctlPath(m *machine) string {
	return filepath.Join(a.cfg.StateDir, m.cfg.Name, "control.json")
}

// ctlOf returns the machine's control state, read from the state dir the
// first time. An unreadable file counts as paused: when in doubt, do not
// replicate a machine that may have been fenced.
func (a *Agent) ctlOf(m *machine) (paused, stopped bool) {
	m.ctl.once.Do(func() {
		b, err := os.ReadFile(a.ctlPath(m))
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		var f ctlFile
		if err == nil {
			err = json.Unmarshal(b, &f)
		}
		if err != nil {
			slog.Error("control state unreadable; replication stays paused until start", "machine", m.cfg.Name, "err", err)
			f = ctlFile{Paused: true, Stopped: true}
		}
		m.ctl.mu.Lock()
		m.ctl.paused, m.ctl.stopped = f.Paused, f.Stopped
		m.ctl.mu.Unlock()
		a.board.update(m.slot, func(s *MachineStatus) { s.Paused = f.Paused })
	})
	m.ctl.mu.Lock()
	defer m.ctl.mu.Unlock()
	return m.ctl.paused, m.ctl.stopped
}

// loadCtl reads every machine's control state (Handler calls it at start,
// so the status shows a machine paused before its first cycle).
func (a *Agent) loadCtl() {
	for _, g := range a.groups {
		for _, m := range g.machines {
			a.ctlOf(m)
		}
	}
}

// setCtl records a machine's control state on disk, then in memory and
// the status.
func (a *Agent) setCtl(m *machine, paused, stopped bool) error {
	a.ctlOf(m)
	m.ctl.mu.Lock()
	defer m.ctl.mu.Unlock()
	b, _ := json.Marshal(ctlFile{Paused: paused, Stopped: stopped})
	path := a.ctlPath(m)
	if err := writeSynced(path, b); err != nil {
		return fmt.Errorf("recording the control state of %s: %w", m.cfg.Name, err)
	}
	m.ctl.paused, m.ctl.stopped = paused, stopped
	a.board.update(m.slot, func(s *MachineStatus) { s.Paused = paused })
	return nil
}

// writeSynced replaces path with b durably: a fence must survive a power
// cut as well as a restart.
func writeSynced(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if err := errors.Join(err, f.Close()); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
