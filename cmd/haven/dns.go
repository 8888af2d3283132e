package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	havendns "github.com/haven-dr/haven/internal/dns"
)

func newDNSCmd() *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "dns",
		Short: "Run the traffic manager: authoritative DNS that follows endpoint health",
		Long: "Serves the zones and profiles of --config over UDP and TCP, probes endpoints, and\n" +
			"serves the HTTP API and /metrics on the config's api address. SIGHUP reloads.\n" +
			"The API needs the bearer token in api_token_file (created, mode 0600, at the first\n" +
			"start); API changes are kept in state_file across reloads and restarts.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			return runDNS(cmd.Context(), path, log, nil)
		},
	}
	c.Flags().StringVar(&path, "config", "", "YAML configuration file (required)")
	_ = c.MarkFlagRequired("config")
	c.AddCommand(newDNSStatusCmd(), newDNSSetCmd(), newDNSDSCmd())
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

// apiFlags say how `haven dns status|set` reach a running server: from its
// config file (address, token file, TLS certificate), or flag by flag.
type apiFlags struct {
	config, api, tokenFile, caFile string
	timeout                        time.Duration
}

func (f *apiFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.config, "config", "", "config of the running haven dns: API address, token file and TLS from it")
	c.Flags().StringVar(&f.api, "api", "127.0.0.1:8053", "API address (host:port, http:// or https:// URL); overrides --config")
	c.Flags().StringVar(&f.tokenFile, "token-file", "", "API token file; overrides --config")
	c.Flags().StringVar(&f.caFile, "ca-file", "", "PEM CA of an https API; overrides --config")
	c.Flags().DurationVar(&f.timeout, "timeout", havendns.DefaultClientTimeout, "give up after this long")
}

func (f *apiFlags) client(cmd *cobra.Command) (*havendns.Client, error) {
	base, o := f.api, havendns.ClientOptions{}
	if f.config != "" {
		cfg, err := havendns.LoadConfig(f.config)
		if err != nil {
			return nil, usageError(err.Error())
		}
		if base, o, err = havendns.ConfigClientOptions(cfg); err != nil {
			return nil, usageError(err.Error())
		}
	}
	if cmd.Flags().Changed("api") {
		base = f.api
	}
	if f.tokenFile != "" {
		o.TokenFile = f.tokenFile
	}
	if f.caFile != "" {
		o.CAFile = f.caFile
	}
	if o.TokenFile == "" {
		return nil, usageError("the API needs its token: give --config or --token-file")
	}
	o.Timeout, o.Operator = f.timeout, true
	return havendns.NewClient(base, o)
}

func newDNSStatusCmd() *cobra.Command {
	var af apiFlags
	c := &cobra.Command{
		Use:   "status",
		Short: "Print profiles and endpoint states (JSON) from a running haven dns",
		Long: "Each endpoint shows the values in effect, the config's values (\"config\") and,\n" +
			"when the API changed it, the override (\"override\") that wins and is kept across restarts.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			ps, err := c.Profiles(cmd.Context())
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(ps)
		},
	}
	af.register(c)
	return c
}

func newDNSSetCmd() *cobra.Command {
	var af apiFlags
	var enable, disable, reset bool
	var prio, weight int
	c := &cobra.Command{
		Use:   "set PROFILE ENDPOINT",
		Short: "Enable, disable or re-prioritise an endpoint of a running haven dns",
		Long: "The change is an override kept in the server's state file across reloads and\n" +
			"restarts; --reset drops it so the config's values apply again.",
		Args: cobra.ExactArgs(2),
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
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			var st havendns.EndpointStatus
			if reset {
				st, err = c.ResetEndpoint(cmd.Context(), args[0], args[1])
			} else {
				st, err = c.UpdateEndpoint(cmd.Context(), args[0], args[1], p)
			}
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(st)
		},
	}
	af.register(c)
	c.Flags().BoolVar(&enable, "enable", false, "enable the endpoint")
	c.Flags().BoolVar(&disable, "disable", false, "disable the endpoint")
	c.Flags().BoolVar(&reset, "reset", false, "drop the API's override: back to the config's values")
	c.Flags().IntVar(&prio, "priority", 0, "new priority (1 is tried first)")
	c.Flags().IntVar(&weight, "weight", 0, "new weight (1..1000)")
	c.MarkFlagsMutuallyExclusive("enable", "disable", "reset")
	c.MarkFlagsMutuallyExclusive("priority", "reset")
	c.MarkFlagsMutuallyExclusive("weight", "reset")
	return c
}
