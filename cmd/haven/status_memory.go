package main

import (
	"fmt"

	"github.com/haven-dr/haven/internal/api"
)

// recoveredLine is one copy of a machine at the recovery site: where it
// runs and what its memory limit did.
func recoveredLine(name string, r api.RecoveredMachine) string {
	line := fmt.Sprintf("machine %s: recovered copy (plan %s, site %s, host %s): ", name, r.Plan, r.Site, r.Host)
	switch {
	case r.Error != "":
		return line + "host cannot tell: " + r.Error
	case !r.Running:
		return line + "not running"
	}
	m := r.Memory
	switch {
	case m == nil || m.Source == "":
		return line + "running, no memory limit"
	case m.Source == "vm":
		return line + fmt.Sprintf("running, VM of %d MiB (an OOM inside the guest is not seen)", m.LimitMB)
	}
	line += fmt.Sprintf("running, memory %d of %d MiB, at the limit %d times, %d processes OOM-killed", m.UsageMB, m.LimitMB, m.AtLimit, m.OOMKills)
	if m.OOMKills > 0 {
		line += " (IT WENT OVER ITS MEMORY LIMIT)"
	}
	return line
}
