package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/demo"
	"github.com/spf13/cobra"
)

func newDemoCmd() *cobra.Command {
	opt := demo.Options{Password: "haven-demo", DiskSize: 256 << 20}
	var sc demo.ScenarioOptions
	var vaultOnly, asJSON bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the seed scenario on this machine: protect a shop (web + PostgreSQL), drill, disaster, failover, failback, report",
		Long: `Builds a primary site (a web machine and a PostgreSQL machine), customers with a
caching resolver placing orders, haven agent, haven server and haven dns, then runs a test
failover, a disaster, an unplanned failover, reprotect and a planned failback, and prints a
drill report measured from the customers' side. Needs root, PostgreSQL, Unbound and xfsprogs.
Ctrl-C removes everything; --keep leaves it running and prints how to tear it down.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if vaultOnly {
				if opt.Dir == "" {
					opt.Dir = filepath.Join(os.TempDir(), "haven-demo")
				}
				return demo.Run(cmd.Context(), opt, os.Stdout)
			}
			sc.Dir = opt.Dir
			sc.Out = os.Stdout
			if asJSON {
				sc.Out = os.Stderr // the report alone on stdout
			}
			rep, err := demo.RunScenario(cmd.Context(), sc)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			}
			rep.Print(io.Writer(os.Stdout))
			return nil
		},
	}
	cmd.Flags().StringVar(&opt.Dir, "dir", "", "work directory (default: a new /var/tmp/hvdemo…)")
	cmd.Flags().BoolVar(&sc.Keep, "keep", false, "leave the sites running at the end and print how to try and tear them down")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the drill report as JSON on stdout (progress goes to stderr)")
	cmd.Flags().BoolVar(&sc.Planned, "planned", false, "only protect and a planned failover under customer load, measuring the customers' outage (bench/planned)")
	cmd.Flags().BoolVar(&vaultOnly, "vault-only", false, "only the vault walk-through: snapshot, check and restore a sample disk")
	cmd.Flags().Int64Var(&opt.DiskSize, "disk-size", opt.DiskSize, "sample disk size in bytes (--vault-only)")
	return cmd
}
