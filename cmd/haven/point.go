package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// newPointCmd holds what an operator decides about single points. Release
// talks to the vault with its password (an admin act, like prune), not to
// the server: the vault is the source of truth and needs no server up.
func newPointCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "point", Short: "Preserved recovery points: list and release"}
	cmd.AddCommand(newPointListCmd(), newPointReleaseCmd())
	return cmd
}

func newPointListCmd() *cobra.Command {
	var vf vaultFlags
	var machine string
	cmd := &cobra.Command{
		Use: "preserved [--machine NAME]", Short: "List preserved points (an old primary's state kept at failback)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			all, err := v.Points(cmd.Context(), machine)
			if err != nil {
				return err
			}
			released, err := v.Released(cmd.Context(), all)
			if err != nil {
				return err
			}
			type row struct {
				Machine  string `json:"machine"`
				Point    string `json:"point"`
				Time     string `json:"time"`
				Released bool   `json:"released"`
			}
			var rows []row
			for _, p := range all {
				if p.Preserved() {
					rows = append(rows, row{p.Machine, p.ID, p.Time.Local().Format("2006-01-02 15:04:05"), released[p]})
				}
			}
			if vf.json {
				return printJSON(rows)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MACHINE\tPOINT\tTIME\tRELEASED")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", r.Machine, r.Point, r.Time, r.Released)
			}
			return tw.Flush()
		},
	}
	vf.register(cmd)
	cmd.Flags().StringVar(&machine, "machine", "", "only this machine")
	return cmd
}

func newPointReleaseCmd() *cobra.Command {
	var vf vaultFlags
	cmd := &cobra.Command{
		Use:   "release MACHINE POINT",
		Short: "Let the next prune remove a preserved point (retention keeps it until then)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			p, err := v.ReleasePoint(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "point %s of %s released: the next prune removes it\n", p.ID, p.Machine)
			return nil
		},
	}
	vf.register(cmd)
	return cmd
}
