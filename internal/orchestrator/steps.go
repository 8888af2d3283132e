package orchestrator

import (
	"context"
	"fmt"
	"strings"

	"github.com/haven-dr/haven/internal/protection"
)

// steps lists a job's steps from its kind.
func (r *run) steps() ([]step, error) {
	plan := r.cfg.Plan(r.job.Plan)
	if plan == nil {
		return nil, fmt.Errorf("%w: no plan %q", ErrBadRequest, r.job.Plan)
	}
	k, err := kindOf(r.job.Type)
	if err != nil {
		return nil, err
	}
	return k.steps(r, plan), nil
}

// machinesOf lists the plan's machines in start order.
func machinesOf(p *protection.Plan) []string {
	var out []string
	for _, g := range p.Groups {
		out = append(out, g.Machines...)
	}
	return out
}

func groupLabel(i int, g protection.Group) string {
	if g.Name != "" {
		return fmt.Sprintf("group %d (%s)", i+1, g.Name)
	}
	return fmt.Sprintf("group %d (%s)", i+1, strings.Join(g.Machines, ", "))
}

func actionLabel(a protection.Action) string {
	if a.Name != "" {
		return a.Type + " " + a.Name
	}
	switch a.Type {
	case protection.ActionDNS:
		return "dns " + a.Profile + " -> " + a.Endpoint
	case protection.ActionScript:
		s := a.Run
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return "script " + s
	}
	return a.Type
}

func (r *run) failoverSteps(plan *protection.Plan, typ, site string) []step {
	var s []step
	all := machinesOf(plan)
	network := step{"network", func(ctx context.Context, r *run) error { return r.ensureSite(ctx, site, typ == "test") }}
	switch typ {
	case "planned":
		// Everything that needs no stop comes before it, so customers
		// wait only for what must follow it.
		// The wait for resolvers comes before the standby's point, not
		// after: the point is then taken just before the stop, so the
		// final point differs from it by less and the database's
		// shutdown checkpoint finds little to write (with the wait after
		// it, the stop took up to 2 s under load in bench/planned).
		s = append(s, step{"lower DNS TTL", func(ctx context.Context, r *run) error { return r.lowerTTL(ctx, plan, "failover") }},
			network,
			step{"resolvers drop answers of the old TTL", func(ctx context.Context, r *run) error { return r.drainTTL(ctx) }},
			step{"standby at a point taken now", func(ctx context.Context, r *run) error { return r.standbyNow(ctx, all) }},
			step{"stop primary machines", func(ctx context.Context, r *run) error { return r.stopPrimary(ctx, plan) }},
			step{"final recovery points", func(ctx context.Context, r *run) error { return r.finalPoints(ctx, all) }},
			step{"choose recovery points", func(ctx context.Context, r *run) error { return r.choosePoints(ctx, all) }})
	case "unplanned":
		s = append(s, step{"check primary", func(ctx context.Context, r *run) error { return r.checkPrimary(ctx, all) }},
			step{"final points of fenced machines", func(ctx context.Context, r *run) error { return r.fencedPoints(ctx, all) }})
	}
	if typ != "planned" {
		s = append(s, step{"choose recovery points", func(ctx context.Context, r *run) error { return r.choosePoints(ctx, all) }}, network)
	}
	for i, g := range plan.Groups {
		label := groupLabel(i, g)
		s = append(s, r.actionSteps(label+": before", g.Before, typ, "failover", g.Machines, site)...)
		s = append(s,
			step{label + ": disks", func(ctx context.Context, r *run) error { return r.prepareDisks(ctx, g.Machines) }},
			step{label + ": start", func(ctx context.Context, r *run) error { return r.startMachines(ctx, site, g.Machines, typ == "test") }},
			step{label + ": health", func(ctx context.Context, r *run) error { return r.waitHealthy(ctx, site, g.Machines, typ == "test") }})
		if typ != "test" && publishes(r.cfg, g.Machines) {
			// Before the after actions: a dns cut-over sends customers
			// to the published address, which must answer by then.
			s = append(s, step{label + ": publish", func(ctx context.Context, r *run) error { return r.publish(ctx, site, g.Machines) }})
		}
		s = append(s, r.actionSteps(label+": after", g.After, typ, "failover", g.Machines, site)...)
	}
	s = append(s, step{"finish", func(ctx context.Context, r *run) error {
		// A host lost after its machines passed their steps (a retry
		// after it died): they come up on the others before the end.
		if err := r.recoverLost(ctx, site, all, typ == "test"); err != nil {
			return err
		}
		if typ == "test" {
			return r.setTest(ctx, r.job.ID)
		}
		return r.setPhase(ctx, PhaseFailedOver, r.job.ID)
	}})
	return s
}

func (r *run) actionSteps(label string, actions []protection.Action, typ, dir string, machines []string, site string) []step {
	var s []step
	for _, a := range actions {
		name := label + ": " + actionLabel(a)
		s = append(s, step{name, func(ctx context.Context, r *run) error {
			if !a.Applies(typ, dir) {
				return errSkipped
			}
			if a.Type == protection.ActionDNS && typ == "test" {
				r.logf("info", "%s: a test failover never touches customer DNS", name)
				return errSkipped
			}
			return r.runAction(ctx, name, a, machines, site, typ, dir)
		}})
	}
	return s
}
