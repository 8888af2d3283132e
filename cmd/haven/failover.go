package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/server/client"
)

func newFailoverCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "failover",
		Short: "Test, planned or unplanned failover of a recovery plan; change point, commit, cancel",
	}
	c.AddCommand(
		jobCmd("test", "Boot the plan into the isolated test network (customers and replication untouched)", orchestrator.TestFailover),
		jobCmd("cleanup", "Remove a test failover's machines, disks and networks and record the drill", orchestrator.TestCleanup),
		jobCmd("planned", "Stop the primary machines, take final points and fail over with no data loss", orchestrator.PlannedFailover),
		jobCmd("unplanned", "Fail over from the chosen points while the primary is down (fences a primary that answers)", orchestrator.UnplannedFailover),
		jobCmd("change-point", "Before commit: bring the failed-over machines up from other points", orchestrator.ChangePoint),
		jobCmd("commit", "Make the failover final", orchestrator.Commit),
		jobCmd("cancel", "Before commit: undo the failover (machines, networks, DNS) and restart the primary it stopped", orchestrator.CancelFailover),
		jobCmd("recover-machines", "After failover: bring up elsewhere, from the newest points, the machines of a recovery host that no longer answers", orchestrator.RecoverMachines),
	)
	return c
}

func newReprotectCmd() *cobra.Command {
	return jobCmd("reprotect", "Replicate the recovered machines back into the vault (after commit)", orchestrator.Reprotect)
}

func newFailbackCmd() *cobra.Command {
	return jobCmd("failback", "Planned failover back: final points, delta-restore onto the primary's disks, start it, move DNS back", orchestrator.Failback)
}

// jobCmd submits a job on a plan and follows it to its end (or --detach).
func jobCmd(use, short string, typ orchestrator.JobType) *cobra.Command {
	var f serverFlags
	var plan, disaster string
	var p api.Params
	var detach bool
	c := &cobra.Command{
		Use:   use + " --plan NAME",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if disaster != "" {
				t, err := time.Parse(time.RFC3339, disaster)
				if err != nil {
					return usageError("--disaster-time: " + err.Error())
				}
				p.DisasterTime = &t
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			j, err := c.Submit(cmd.Context(), plan, string(typ), p)
			if err != nil {
				return serverErr(err)
			}
			if !f.json {
				fmt.Fprintf(cmd.OutOrStdout(), "job %s: %s of plan %s\n", j.ID, typ, plan)
			}
			if detach {
				if f.json {
					return printJSONTo(cmd.OutOrStdout(), j)
				}
				return nil
			}
			return follow(cmd.Context(), cmd.OutOrStdout(), c, j.ID, f.json, api.JobSucceeded)
		},
	}
	c.Flags().StringVar(&plan, "plan", "", "recovery plan (required)")
	_ = c.MarkFlagRequired("plan")
	// The flags are the options the job kind takes (its registry entry).
	takes := orchestrator.TakesOf(typ)
	if takes.Point {
		c.Flags().StringVar(&p.Point, "point", "", "latest (default: per consistency group, the newest capture instant every member has), latest-per-machine (each machine's newest, even from different instants), latest-app, latest-consistent, last-clean (from before an open encryption alert: haven alert list), an RFC 3339 time or a point ID")
	}
	if takes.NoStandby {
		c.Flags().BoolVar(&p.NoStandby, "no-standby", false, "restore disks whole instead of cloning the standby images")
	}
	if takes.Force {
		c.Flags().BoolVar(&p.Force, "force", false, "do not fence a primary whose agent still answers (split-brain risk)")
	}
	if takes.DisasterTime {
		c.Flags().StringVar(&disaster, "disaster-time", "", "moment of the disaster (RFC 3339) for the data-loss report; default each machine's agent's last heartbeat")
	}
	if takes.Note {
		c.Flags().StringVar(&p.Note, "note", "", "note recorded in the drill history")
	}
	c.Flags().BoolVar(&detach, "detach", false, "return once the job is submitted")
	f.add(c)
	return c
}

// follow prints a job's log as it runs, then its report, and ends as
// jobEnd says.
func follow(ctx context.Context, w io.Writer, c *client.Client, id string, asJSON bool, done string) error {
	j, err := c.Watch(ctx, id, func(l api.LogLine) {
		if !asJSON {
			fmt.Fprintf(w, "  %s %s\n", l.Time.Local().Format("15:04:05.000"), l.Msg)
		}
	})
	if err != nil {
		return serverErr(err)
	}
	rep, err := c.Report(ctx, id)
	if err != nil {
		return serverErr(err)
	}
	if asJSON {
		if err := printJSONTo(w, rep); err != nil {
			return err
		}
	} else {
		printReport(w, rep)
	}
	return jobEnd(j, done)
}

// jobEnd is how the CLI ends after following j: only the end the command
// asked for (done: succeeded; `haven job cancel`: canceled) is exit 0, so
// a script never reads a canceled job or one that waits for approval as
// done.
func jobEnd(j *api.Job, done string) error {
	switch j.State {
	case done:
		return nil
	case api.JobFailed:
		return &exitErr{exitJobFailed, fmt.Errorf("job %s failed: %s (haven job retry %s, or haven job cancel %s)", j.ID, j.Error, j.ID, j.ID)}
	case api.JobCanceled:
		return &exitErr{exitJobCanceled, fmt.Errorf("job %s was canceled", j.ID)}
	case api.JobWaiting:
		return &exitErr{exitJobWaiting, fmt.Errorf("job %s waits for approval: haven job approve %s (or haven job cancel %s)", j.ID, j.ID, j.ID)}
	}
	return &exitErr{exitFailure, fmt.Errorf("job %s ended in state %q", j.ID, j.State)}
}

func printReport(w io.Writer, r *api.Report) {
	fmt.Fprintf(w, "report: %s of plan %s: %s\n", r.Type, r.Plan, r.State)
	for _, p := range r.Points {
		loss := ""
		if p.DataLossSeconds != nil {
			loss = fmt.Sprintf(", data loss window %.1fs", *p.DataLossSeconds)
		}
		fmt.Fprintf(w, "  point  %-10s %s (%s, %.1fs old at start%s)\n", p.Machine, p.Point, p.Consistency, p.AgeSeconds, loss)
	}
	for _, n := range r.PointNotes {
		fmt.Fprintf(w, "  points %s\n", n)
	}
	for _, d := range r.Disks {
		fmt.Fprintf(w, "  disk   %-10s %s: %s, wrote %s of %s in %.2fs\n", d.Machine, d.Disk, d.Method, mib(d.BytesWritten), mib(d.Size), d.Seconds)
	}
	for _, d := range r.Failback {
		fmt.Fprintf(w, "  failback %s/%s: wrote %s of %s (old primary had %s that differed, kept as a point)\n",
			d.Machine, d.Disk, mib(d.BytesWritten), mib(d.Size), mib(d.Differed))
	}
	for _, m := range r.Machines {
		if m.HealthySeconds != nil {
			fmt.Fprintf(w, "  up     %-10s %s healthy after %.2fs\n", m.Machine, m.Address, *m.HealthySeconds)
		}
	}
	if r.DNSSeconds != nil {
		fmt.Fprintf(w, "  DNS answered the new site after %.2fs\n", *r.DNSSeconds)
	}
	if r.RTOSeconds != nil {
		fmt.Fprintf(w, "  RTO %.2fs\n", *r.RTOSeconds)
	}
	for _, s := range r.Steps {
		fmt.Fprintf(w, "  step   %-45s %-8s %.2fs\n", s.Name, s.State, s.Seconds)
	}
	for _, x := range r.Warnings {
		fmt.Fprintf(w, "  WARNING: %s\n", x)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
}
