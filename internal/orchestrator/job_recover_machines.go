package orchestrator

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/store"
)

// RecoverMachines brings up elsewhere the machines of a failed-over plan
// whose recovery host was lost after the failover: each is placed on a
// host that answers, its disks prepared there from its newest point (the
// standby image, if the standby loop rebuilt it there, makes that a
// delta), started, waited for and published, group by group. The
// machines keep running on the hosts that answer. A reprotected plan's
// replication back then follows them (replication_move.go).
const RecoverMachines JobType = "recover-machines"

var recoverMachinesKind = &kind{
	takes:           takesPoint | takesNoStandby,
	precondition:    atRecovery,
	onFailoverDisks: true,
	steps: func(r *run, plan *protection.Plan) []step {
		s := []step{{"find lost machines", func(ctx context.Context, r *run) error { return r.findLost(ctx, machinesOf(plan)) }},
			{"choose recovery points", func(ctx context.Context, r *run) error { return r.choosePoints(ctx, r.out.Lost) }}}
		for i, g := range plan.Groups {
			label := groupLabel(i, g)
			s = append(s, step{label + ": recover", func(ctx context.Context, r *run) error { return r.recoverGroup(ctx, g.Machines) }})
			if publishes(r.cfg, g.Machines) {
				s = append(s, step{label + ": publish", func(ctx context.Context, r *run) error {
					return r.publish(ctx, SiteRecovery, r.lostOf(g.Machines))
				}})
			}
		}
		return append(s, step{"replication back follows the machines", func(ctx context.Context, r *run) error {
			return r.followReplication(ctx, plan)
		}})
	},
}

func atRecovery(st *store.PlanState) error {
	return need(st, st.Phase == PhaseFailedOver || st.Phase == PhaseCommitted || st.Phase == PhaseReprotected,
		"only a plan whose machines run at the recovery site can have machines recovered")
}

// findLost records the plan's machines whose host does not answer.
func (r *run) findLost(ctx context.Context, machines []string) error {
	r.loadDiskJobPlacement(ctx)
	down := r.o.downHosts(ctx)
	r.out.Lost = nil
	for _, m := range machines {
		h, err := r.hostOf(ctx, m)
		if err != nil {
			return err
		}
		if down[h.Name] != nil {
			r.out.Lost = append(r.out.Lost, m)
			r.warn("%s ran on host %s, which does not answer (%v)", m, h.Name, down[h.Name])
		}
	}
	if len(r.out.Lost) == 0 {
		r.logf("info", "every host of plan %s answers: no machine to recover", r.job.Plan)
	}
	return r.save(ctx)
}

func (r *run) lostOf(machines []string) []string {
	return slices.DeleteFunc(slices.Clone(machines), func(m string) bool { return !slices.Contains(r.out.Lost, m) })
}

// recoverGroup places the group's lost machines on hosts that answer,
// prepares their disks there, starts them and waits for their health,
// then tells the failover job where they run now.
func (r *run) recoverGroup(ctx context.Context, machines []string) error {
	lost := r.lostOf(machines)
	if len(lost) == 0 {
		return errSkipped
	}
	if err := r.prepareDisks(ctx, lost); err != nil {
		return err
	}
	if err := r.waitHealthy(ctx, SiteRecovery, lost, false); err != nil {
		return err
	}
	return r.sharePlacement(ctx, lost)
}

// sharePlacement writes where this job put machines into the failover
// job it acts on, so failback, cancel and later jobs find them there;
// started are machines this job started, whose runs replace the
// failover's.
func (r *run) sharePlacement(ctx context.Context, started []string) error {
	if r.out.DiskJob == "" {
		return nil
	}
	err := r.o.updateJob(ctx, r.out.DiskJob, func(fr *run) {
		if fr.out.Placement == nil {
			fr.out.Placement = map[string]string{}
		}
		for m, to := range r.out.Placement {
			// The host m leaves may hold the plan's replication back
			// (replication_move.go).
			if was := fr.out.Placement[m]; was != "" && was != to && !slices.Contains(fr.out.ReplicationLeft, was) {
				fr.out.ReplicationLeft = append(fr.out.ReplicationLeft, was)
			}
		}
		maps.Copy(fr.out.Placement, r.out.Placement)
		for _, m := range started {
			if fr.out.Machines == nil {
				fr.out.Machines = map[string]*MachineRun{}
			}
			fr.out.Machines[m] = r.out.Machines[m]
			fr.recordOn(r.cfg, m, r.out.Placement[m])
		}
	})
	if err != nil {
		return fmt.Errorf("record the new hosts: %w", err)
	}
	return nil
}

// recordOn records in the failover's resources m's disks, machine and
// published services on host h, where another job brought it up, so the
// failover's cancel and failback remove them there.
func (r *run) recordOn(cfg *protection.Config, m, h string) {
	mc := cfg.Machine(m)
	for _, d := range mc.Disks {
		r.record(Resource{Kind: ResDisk, Name: m, Path: r.diskPath(m, d.Name), Host: h})
	}
	r.record(Resource{Kind: ResMachine, Site: SiteRecovery, Name: m, Host: h})
	if len(mc.Publish) > 0 {
		r.record(Resource{Kind: ResPublish, Site: SiteRecovery, Name: m, Host: h})
	}
}
