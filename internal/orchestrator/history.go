package orchestrator

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// pointHistory remembers which points this process recorded already, so
// a refresh writes only the new ones (a restart writes them all once
// more; the store keeps each point's first record).
type pointHistory struct {
	mu   sync.Mutex
	seen map[string]bool // machine + "/" + point ID
}

// recordPoints adds a machine's points to the history SLA reports
// measure RPO from (store.AddPoints), with its RPO target as its agent
// reported it last; the vault's own list loses points to retention.
func (o *Orchestrator) recordPoints(ctx context.Context, machine string, ps []*vault.Point, target float64) error {
	h := &o.history
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string]bool{}
	}
	now := time.Now().UTC()
	var recs []store.PointRecord
	for _, p := range ps {
		if !h.seen[machine+"/"+p.ID] {
			recs = append(recs, store.PointRecord{Machine: machine, Point: p.ID, Captured: p.Time.UTC(), Seen: now,
				Consistency: p.Consistency, TargetSeconds: target})
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if err := o.Store.AddPoints(ctx, recs); err != nil {
		return err
	}
	for _, r := range recs {
		h.seen[machine+"/"+r.Point] = true
	}
	return nil
}

// rpoTargets is each machine's RPO target (rpo_alert) in seconds from
// its agent's newest heartbeat.
func (o *Orchestrator) rpoTargets(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	hbs, err := o.Store.Heartbeats(ctx)
	if err != nil {
		return out
	}
	for _, h := range hbs {
		var rep agent.Report
		if json.Unmarshal(h.Report, &rep) != nil {
			continue
		}
		for _, m := range rep.Machines {
			if m.RPOAlertSeconds > 0 {
				out[m.Name] = m.RPOAlertSeconds
			}
		}
	}
	return out
}
