package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/server/client"
)

func newJobCmd() *cobra.Command {
	c := &cobra.Command{Use: "job", Short: "List, show, watch, retry, cancel or approve jobs"}
	c.AddCommand(jobListCmd(), jobShowCmd(),
		jobIDCmd("watch", "Follow a job's log until it ends, then print its report", nil),
		jobIDCmd("retry", "Run a failed job again from its failed step", (*client.Client).Retry),
		jobIDCmd("cancel", "Stop a job and remove what it created", (*client.Client).Cancel),
		jobIDCmd("approve", "Let a job waiting at a manual step go on", (*client.Client).Approve),
		drillsCmd())
	return c
}

func jobListCmd() *cobra.Command {
	var f serverFlags
	var plan string
	var active bool
	c := &cobra.Command{
		Use:   "list",
		Short: "Jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			js, err := c.Jobs(cmd.Context(), plan, active, 50)
			if err != nil {
				return serverErr(err)
			}
			if f.json {
				return printJSONTo(cmd.OutOrStdout(), js)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tPLAN\tTYPE\tSTATE\tCREATED\tERROR")
			for _, j := range js {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Plan, j.Type, j.State, j.Created.Local().Format("2006-01-02 15:04:05"), j.Error)
			}
			return w.Flush()
		},
	}
	c.Flags().StringVar(&plan, "plan", "", "only this plan")
	c.Flags().BoolVar(&active, "active", false, "only active jobs")
	f.add(c)
	return c
}

func jobShowCmd() *cobra.Command {
	var f serverFlags
	c := &cobra.Command{
		Use:   "show ID",
		Short: "A job's steps and report",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			rep, err := c.Report(cmd.Context(), args[0])
			if err != nil {
				return serverErr(err)
			}
			if f.json {
				return printJSONTo(cmd.OutOrStdout(), rep)
			}
			printReport(cmd.OutOrStdout(), rep)
			return nil
		},
	}
	f.add(c)
	return c
}

func jobIDCmd(use, short string, act func(*client.Client, context.Context, string) (*api.Job, error)) *cobra.Command {
	var f serverFlags
	var detach bool
	c := &cobra.Command{
		Use:   use + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if act != nil {
				if _, err := act(c, cmd.Context(), args[0]); err != nil {
					return serverErr(err)
				}
				if detach {
					return nil
				}
			}
			done := api.JobSucceeded
			if use == "cancel" {
				done = api.JobCanceled
			}
			return follow(cmd.Context(), cmd.OutOrStdout(), c, args[0], f.json, done)
		},
	}
	if act != nil {
		c.Flags().BoolVar(&detach, "detach", false, "do not follow the job")
	}
	f.add(c)
	return c
}

func drillsCmd() *cobra.Command {
	var f serverFlags
	var plan string
	c := &cobra.Command{
		Use:   "drills",
		Short: "Drill history: test failovers, their result and RTO",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ds, err := c.Drills(cmd.Context(), plan)
			if err != nil {
				return serverErr(err)
			}
			if f.json {
				return printJSONTo(cmd.OutOrStdout(), ds)
			}
			for _, d := range ds {
				res := "FAILED"
				if d.Passed {
					res = "passed"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %s  %s  RTO %.1fs  %s %s\n", d.Started.Local().Format("2006-01-02 15:04"), d.Plan, res, d.RTOSeconds, d.Note, d.Error)
			}
			return nil
		},
	}
	c.Flags().StringVar(&plan, "plan", "", "only this plan")
	f.add(c)
	return c
}
