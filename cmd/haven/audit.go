package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newAuditCmd() *cobra.Command {
	var f serverFlags
	var limit int
	c := &cobra.Command{
		Use:   "audit",
		Short: "Who did what: the server's audit log, newest first (admin token)",
		Long: "Lists the state-changing requests the server answered (apply, job submit,\n" +
			"retry, cancel, approve, console login and logout) and token rotations:\n" +
			"when, who (role, console session or cli), from where, what, on which\n" +
			"plan or job, and the HTTP status answered.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 1 {
				return usageError("--limit: want a positive number")
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			es, err := c.Audit(cmd.Context(), limit)
			if err != nil {
				return serverErr(err)
			}
			if f.json {
				return printJSONTo(cmd.OutOrStdout(), es)
			}
			for _, e := range es {
				target := e.Target
				if target == "" {
					target = "-"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %-28s  %-21s  %-15s  %-28s  %d\n",
					e.Time.Local().Format("2006-01-02 15:04:05"), e.Who, e.Remote, e.Action, target, e.Status)
			}
			return nil
		},
	}
	c.Flags().IntVar(&limit, "limit", 100, "at most this many entries")
	f.add(c)
	return c
}
