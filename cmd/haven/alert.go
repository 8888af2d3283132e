package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/haven-dr/haven/internal/api"
	"github.com/spf13/cobra"
)

// newAlertCmd is about encryption alerts, the alerts an operator closes
// (the others end when their condition does).
func newAlertCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "alert", Short: "Encryption alerts (mass encryption suspected): list and close"}
	cmd.AddCommand(newAlertListCmd(), newAlertCloseCmd())
	return cmd
}

func newAlertListCmd() *cobra.Command {
	var f serverFlags
	c := &cobra.Command{
		Use: "list", Short: "Encryption alerts of every machine, open and closed, with their last clean points", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return serverErr(err)
			}
			rows := []api.EncryptionAlert{}
			for _, m := range st.Machines {
				rows = append(rows, m.Encryption...)
			}
			if f.json {
				return printJSONTo(cmd.OutOrStdout(), rows)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(w, "MACHINE\tALERT (FIRST SUSPECT)\tLAST CLEAN\tSUSPECT POINTS\tSTATE\tREASON")
			for _, a := range rows {
				state := "open"
				if !a.Open {
					state = "closed " + a.Closed.Local().Format("2006-01-02 15:04:05")
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", a.Machine, a.FirstSuspect, short(a.LastClean), a.Suspect, state, a.Reason)
			}
			return w.Flush()
		},
	}
	f.add(c)
	return c
}

func newAlertCloseCmd() *cobra.Command {
	var f serverFlags
	var note string
	c := &cobra.Command{
		Use:   "close MACHINE ALERT",
		Short: "Close an encryption alert: its last clean point returns to retention, detection resumes",
		Long: "ALERT is the alert's first suspect point (ID or unique prefix), as `haven alert list`\n" +
			"and `haven status` show it. Close once the machine is recovered (or the alarm\n" +
			"was ordinary work): while open, prune keeps the last clean point.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			a, err := c.CloseEncryptionAlert(cmd.Context(), args[0], args[1], note)
			if err != nil {
				return serverErr(err)
			}
			if f.json {
				return printJSONTo(cmd.OutOrStdout(), a)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "encryption alert %s of %s closed; last clean point %s returns to retention\n",
				a.FirstSuspect, a.Machine, short(a.LastClean))
			return nil
		},
	}
	c.Flags().StringVar(&note, "note", "", "why (kept in the vault with the close)")
	f.add(c)
	return c
}
