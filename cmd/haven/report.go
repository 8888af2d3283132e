package main

import (
	"github.com/spf13/cobra"
)

func newReportCmd() *cobra.Command {
	var f serverFlags
	var plan, month, format string
	c := &cobra.Command{
		Use:   "report",
		Short: "A plan's monthly SLA report: RPO within target, drills, RTO, failovers",
		Long: "Measured from the server's recorded history, not from configuration: the\n" +
			"share of the month each machine's newest point was within its RPO target and\n" +
			"the worst RPO, the drills run and passed with each one's RTO and point age,\n" +
			"skipped or missed scheduled drills, and the failovers with their data-loss\n" +
			"windows. The current month is measured up to now.",
		Example: "  haven report --plan shop --month 2026-12\n  haven report --plan shop --format csv > shop-2026-12.csv",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if plan == "" {
				return usageError("--plan: missing")
			}
			if f.json {
				format = "json"
			}
			if format != "text" && format != "json" && format != "csv" {
				return usageError("--format: want text, json or csv")
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			rep, err := c.SLAReport(cmd.Context(), plan, month)
			if err != nil {
				return serverErr(err)
			}
			switch format {
			case "json":
				return printJSONTo(cmd.OutOrStdout(), rep)
			case "csv":
				return rep.WriteCSV(cmd.OutOrStdout())
			}
			return rep.WriteText(cmd.OutOrStdout())
		},
	}
	c.Flags().StringVar(&plan, "plan", "", "the plan")
	c.Flags().StringVar(&month, "month", "", "the month, YYYY-MM in UTC (default: the current one, up to now)")
	c.Flags().StringVar(&format, "format", "text", "text, json or csv")
	f.add(c)
	return c
}
