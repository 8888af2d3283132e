package server

import (
	"context"
	"time"

	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// drillTick is how often the leader looks at the drill schedules: a
// drill starts within it of its instant.
const drillTick = time.Second

// drillLoop runs the plans' scheduled drills (orchestrator.RunDrills)
// while this server leads.
func (s *Server) drillLoop(ctx context.Context) {
	for {
		if err := s.orch.RunDrills(ctx, time.Now().UTC()); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduled drills", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(drillTick):
		}
	}
}

// scheduledDrills fills the scheduled-drill facts of p for the alert
// rules: the newest scheduled drill that ran or was missed (ds is newest
// first), the next instant and the drill in flight.
func (s *Server) scheduledDrills(ctx context.Context, pc *protection.Plan, ds []store.Drill, p *alert.Plan) {
	for i := range ds {
		d := &ds[i]
		busy := d.Skipped != "" && !d.Missed
		if d.Scheduled != nil && !busy && (p.LastScheduled == nil || d.Started.After(p.LastScheduled.Started)) {
			p.LastScheduled = d
		}
	}
	next, run, err := s.orch.NextDrill(ctx, pc)
	if err != nil {
		s.log.Warn("alerts: drill schedule", "plan", pc.Name, "err", err)
		return
	}
	p.NextDrill = next
	if run != nil {
		p.DrillRunning = run.TestJob
	}
}
