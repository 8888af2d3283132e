package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/atomicfile"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/prometheus/client_golang/prometheus"
)

// alerts is the server's alert state. Which alerts fired is kept in
// memory only: after a restart every alert that still holds fires (and is
// delivered) once more — at-least-once rather than a second store.
type alerts struct {
	mu          sync.Mutex
	tracker     *alert.Tracker
	notifier    *alert.Notifier
	evaluations prometheus.Counter
	vault       *alert.VaultCheck
	seenFile    string
	seen        map[string]time.Time // plan -> first seen in an applied config
	// kick makes the loop evaluate now: a heartbeat may announce a
	// point whose churn is mass encryption, which must not wait.
	kick chan struct{}
	// memory: what each recovered machine's memory counts were (memory.go).
	memory alert.MemoryWatch
}

// poke asks the alert loop for an evaluation now (never blocks).
func (a *alerts) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func newAlerts(cfg *Config, log *slog.Logger, retry alert.Retry) (*alerts, error) {
	var sinks []alert.Sink
	if w := cfg.Alerts.Webhook; w != nil {
		sinks = append(sinks, alert.NewWebhook(*w))
	}
	if m := cfg.Alerts.SMTP; m != nil {
		mail, err := alert.NewMail(*m)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		sinks = append(sinks, mail)
	}
	a := &alerts{tracker: alert.NewTracker(), notifier: alert.NewNotifier(log, retry, sinks...),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{Name: "haven_alert_evaluations_total",
			Help: "Times the alert rules ran (the alert loop is alive while this grows)."}),
		seenFile: filepath.Join(cfg.StateDir, "alerts-plans.json"), seen: map[string]time.Time{}, kick: make(chan struct{}, 1)}
	a.memory.Quiet = cfg.Alerts.MemoryQuiet
	b, err := os.ReadFile(a.seenFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err == nil {
		if err := json.Unmarshal(b, &a.seen); err != nil {
			return nil, fmt.Errorf("%s: %v (fix or remove it; drill ages then count from now)", a.seenFile, err)
		}
	}
	return a, nil
}

func (a *alerts) collectors() []prometheus.Collector {
	return append(a.notifier.Collectors(), a.evaluations)
}

// current gives alerts that are already firing the Since at which they
// fired, for rules that cannot tell when their condition began.
func (a *alerts) current(as []alert.Alert) []alert.Alert {
	a.mu.Lock()
	defer a.mu.Unlock()
	since := map[string]time.Time{}
	for _, f := range a.tracker.Active() {
		since[f.ID] = f.Since
	}
	out := make([]alert.Alert, 0, len(as))
	for _, x := range as {
		if t, ok := since[x.ID]; ok && t.Before(x.Since) {
			x.Since = t
		}
		out = append(out, x)
	}
	return out
}

func (a *alerts) vaultCheck() *alert.VaultCheck {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.vault == nil {
		return nil
	}
	c := *a.vault
	return &c
}

// firstSeen is when plan first appeared; a plan seen now is recorded so
// its drill age survives restarts.
func (a *alerts) firstSeen(plan string, now time.Time) (time.Time, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t, ok := a.seen[plan]; ok {
		return t, nil
	}
	a.seen[plan] = now
	b, _ := json.MarshalIndent(a.seen, "", "  ")
	return now, atomicfile.WriteFile(a.seenFile, b, 0o600)
}

// planDrills summarises plan's drill history for the drill rule.
func (s *Server) planDrills(ctx context.Context, pc *protection.Plan, now time.Time) alert.Plan {
	plan := pc.Name
	p := alert.Plan{Name: plan}
	var err error
	if p.FirstSeen, err = s.alerts.firstSeen(plan, now); err != nil {
		s.log.Warn("alerts: record plan", "plan", plan, "err", err)
	}
	ds, err := s.store.Drills(ctx, plan)
	if err != nil {
		s.log.Warn("alerts: drills", "plan", plan, "err", err)
	}
	for _, d := range ds {
		if d.Passed && (p.LastPassedDrill == nil || d.Started.After(*p.LastPassedDrill)) {
			t := d.Started
			p.LastPassedDrill = &t
		}
	}
	s.scheduledDrills(ctx, pc, ds, &p)
	return p
}

// alertLoop evaluates the rules every alerts.interval and delivers what
// changed; it returns when ctx ends and its helpers have stopped.
func (s *Server) alertLoop(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.alerts.notifier.Run(ctx) })
	if s.cfg.VaultCheckInterval > 0 {
		wg.Go(func() { s.vaultCheckLoop(ctx) })
	}
	defer wg.Wait()
	for {
		s.evaluateAlerts(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.Alerts.Interval):
		case <-s.alerts.kick:
		}
	}
}

func (s *Server) evaluateAlerts(ctx context.Context) {
	now := time.Now().UTC()
	_, in, err := s.snapshot(ctx, now)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		if ctx.Err() == nil {
			s.log.Warn("alerts: read state", "err", err)
		}
		return
	}
	a := s.alerts
	a.mu.Lock()
	events := a.tracker.Observe(now, alert.Evaluate(in))
	a.mu.Unlock()
	a.evaluations.Inc()
	a.notifier.Deliver(events)
}

// vaultCheckLoop verifies the vault's metadata (not the data: that is
// `haven vault check --read-data`) every vault_check_interval.
func (s *Server) vaultCheckLoop(ctx context.Context) {
	for {
		c := s.checkVault(ctx)
		if ctx.Err() != nil {
			return
		}
		s.alerts.mu.Lock()
		s.alerts.vault = c
		s.alerts.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.cfg.VaultCheckInterval):
		}
	}
}

// checkVault runs the check and, when it finds something, once more,
// keeping only what both runs found: agents write and prune while the
// check reads, so a point stored between its index and point listings
// looks unindexed once, never twice.
func (s *Server) checkVault(ctx context.Context) *alert.VaultCheck {
	first := s.checkVaultOnce(ctx)
	if first.Err == "" && len(first.Problems) == 0 {
		return first
	}
	second := s.checkVaultOnce(ctx)
	if first.Err != "" || second.Err != "" {
		if first.Err == "" || second.Err == "" {
			second.Err = "" // a transient failure to run; keep what the other run found
			second.Problems = append(first.Problems, second.Problems...)
		}
		return second
	}
	var both []string
	for _, p := range second.Problems {
		if slices.Contains(first.Problems, p) {
			both = append(both, p)
		}
	}
	second.Problems = both
	return second
}

func (s *Server) checkVaultOnce(ctx context.Context) *alert.VaultCheck {
	rep, err := s.vault.Check(ctx, vault.CheckOptions{})
	c := &alert.VaultCheck{Time: time.Now().UTC()}
	if err != nil {
		c.Err = err.Error()
	} else {
		c.Problems = rep.Problems
	}
	return c
}
