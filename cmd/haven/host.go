package main

import (
	"errors"

	"github.com/haven-dr/haven/internal/host/hostapi"
	"github.com/spf13/cobra"
)

func newHostCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "host --config FILE",
		Short: "Run a recovery host: sites, overlay networks, disks and machines for haven server, over HTTPS",
		Long: "A recovery host of a site made of several machines: haven server drives it over HTTPS\n" +
			"(bearer token of token_file, created 0600 at the first start; CA in tls.dir/ca.crt) as it\n" +
			"drives its own in-process host. Machines run detached and keep running across a restart.\n" +
			"See docs/site.md (several recovery hosts).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := hostapi.LoadConfig(path)
			if errors.Is(err, hostapi.ErrConfig) {
				return usageError(err.Error())
			} else if err != nil {
				return err
			}
			return hostapi.Run(cmd.Context(), cfg, nil)
		},
	}
	c.Flags().StringVar(&path, "config", "", "YAML configuration file (required)")
	_ = c.MarkFlagRequired("config")
	return c
}
