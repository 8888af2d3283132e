package server

import (
	"context"
	"time"

	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/orchestrator"
)

// MachineMemory passes through (a read); a host without it cannot tell.
func (h fencedHost) MachineMemory(ctx context.Context, site, name string) (machine.MemoryStatus, error) {
	if mc, ok := h.Host.(host.MemoryChecker); ok {
		return mc.MachineMemory(ctx, site, name)
	}
	return machine.MemoryStatus{}, orchestrator.ErrNoMemoryStatus
}

// recoveredMachines adds to the status each protected machine's copies
// running at the recovery site, with what their hosts say of their
// memory, and gives the memory rule the running ones.
func (s *Server) recoveredMachines(ctx context.Context, now time.Time, st *api.Status, in *alert.Inputs) {
	rms, err := s.orch.RecoveredMachines(ctx)
	if err != nil {
		s.log.Warn("status: recovered machines", "err", err)
	}
	var seen []alert.MachineMemory
	for _, rm := range rms {
		r := api.RecoveredMachine{Plan: rm.Plan, Site: rm.Site, Job: rm.Job, Host: rm.Host, Running: rm.Running}
		am := alert.MachineMemory{Machine: rm.Machine, Plan: rm.Plan, Site: rm.Site, Host: rm.Host}
		switch {
		case rm.Err != nil:
			r.Error, am.Unknown = rm.Err.Error(), true
			seen = append(seen, am)
		case rm.Running:
			m := rm.Memory
			r.Memory = &api.MemoryStatus{Source: m.Source, LimitMB: m.LimitMB, UsageMB: m.UsageMB, AtLimit: m.AtLimit, OOMKills: m.OOMKills}
			am.MemoryCounts = alert.MemoryCounts{LimitMB: m.LimitMB, UsageMB: m.UsageMB, AtLimit: m.AtLimit, OOMKills: m.OOMKills}
			seen = append(seen, am)
		}
		for i := range st.Machines {
			if st.Machines[i].Name == rm.Machine {
				st.Machines[i].Recovered = append(st.Machines[i].Recovered, r)
			}
		}
	}
	in.Memory, in.MemoryQuiet = s.alerts.memory.Observe(now, seen), s.alerts.memory.Quiet
}
