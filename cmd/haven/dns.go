package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	havendns "github.com/haven-dr/haven/internal/dns"
)

func newDNSCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "dns",
		Short: "Run the traffic manager: authoritative DNS that follows endpoint health",
		Long: "Serves the zones and profiles of --config over UDP and TCP, probes endpoints, and\n" +
			"serves the HTTP API and /metrics on the config's api address. SIGHUP reloads.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			return runDNS(cmd.Context(), path, log, nil)
		},
	}
	c.Flags().StringVar(&path, "config", "", "YAML configuration file (required)")
	_ = c.MarkFlagRequired("config")
	c.AddCommand(newDNSStatusCmd(), newDNSSetCmd())
	return c
}

// runDNS serves until ctx ends; ready (tests) sees the started server.
func runDNS(ctx context.Context, path string, log *slog.Logger, ready func(*havendns.Server)) error {
	cfg, err := havendns.LoadConfig(path)
	if errors.Is(err, havendns.ErrConfig) {
		return usageError(err.Error())
	} else if err != nil {
		return err
	}
	s, err := havendns.New(cfg, havendns.Options{Log: log, ConfigPath: path})
	if err != nil {
		return usageError(err.Error())
	}
	if err := s.Start(); err != nil {
		return err
	}
	defer s.Close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if ready != nil {
		ready(s)
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("dns stopping")
			return nil
		case <-hup:
			if err := s.ReloadFile(); err != nil {
				log.Error("reload refused; the old config keeps serving", "err", err)
			}
		}
	}
}

func newDNSStatusCmd() *cobra.Command {
	var api string
	c := &cobra.Command{
		Use:   "status",
		Short: "Print profiles and endpoint states (JSON) from a running haven dns",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := havendns.NewClient(api, nil).Profiles(cmd.Context())
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(ps)
		},
	}
	c.Flags().StringVar(&api, "api", "127.0.0.1:8053", "API address of haven dns")
	return c
}

func newDNSSetCmd() *cobra.Command {
	var api string
	var enable, disable bool
	var prio, weight int
	c := &cobra.Command{
		Use:   "set PROFILE ENDPOINT",
		Short: "Enable, disable or re-prioritise an endpoint of a running haven dns",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var p havendns.EndpointPatch
			if enable || disable {
				on := enable
				p.Enabled = &on
			}
			if cmd.Flags().Changed("priority") {
				p.Priority = &prio
			}
			if cmd.Flags().Changed("weight") {
				p.Weight = &weight
			}
			st, err := havendns.NewClient(api, nil).UpdateEndpoint(cmd.Context(), args[0], args[1], p)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(st)
		},
	}
	c.Flags().StringVar(&api, "api", "127.0.0.1:8053", "API address of haven dns")
	c.Flags().BoolVar(&enable, "enable", false, "enable the endpoint")
	c.Flags().BoolVar(&disable, "disable", false, "disable the endpoint")
	c.MarkFlagsMutuallyExclusive("enable", "disable")
	c.Flags().IntVar(&prio, "priority", 0, "new priority (1 is tried first)")
	c.Flags().IntVar(&weight, "weight", 0, "new weight (1..1000)")
	return c
}
