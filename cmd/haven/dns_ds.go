package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	havendns "github.com/haven-dr/haven/internal/dns"
)

func newDNSDSCmd() *cobra.Command {
	var path string
	var next bool
	c := &cobra.Command{
		Use:   "ds",
		Short: "Print the DS records to publish at the registrar (DNSSEC)",
		Long: "Prints one DS record (SHA-256) per zone key of --config, creating the key in the\n" +
			"dnssec key_dir if it does not exist yet. With --next-key it first creates the next key\n" +
			"of every zone (the start of a rollover, see docs/dns.md); both DS are printed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := havendns.LoadConfig(path)
			if errors.Is(err, havendns.ErrConfig) {
				return usageError(err.Error())
			} else if err != nil {
				return err
			}
			if next {
				if _, err := havendns.NextKey(cfg); err != nil {
					return err
				}
			}
			ds, err := havendns.DS(cfg)
			if errors.Is(err, havendns.ErrConfig) {
				return usageError(err.Error())
			} else if err != nil {
				return err
			}
			for _, d := range ds {
				fmt.Fprintln(cmd.OutOrStdout(), d.String())
			}
			return nil
		},
	}
	c.Flags().StringVar(&path, "config", "", "YAML configuration file (required)")
	c.Flags().BoolVar(&next, "next-key", false, "create the next key of each zone first (rollover)")
	_ = c.MarkFlagRequired("config")
	return c
}
