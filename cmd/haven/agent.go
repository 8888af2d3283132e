package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/haven-dr/haven/internal/agent"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

func newAgentCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "agent", Short: "Replicate protected machines into the vault continuously"}
	cmd.AddCommand(newAgentRunCmd(), newAgentStatusCmd())
	return cmd
}

func newAgentRunCmd() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the replication agent until interrupted",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := agent.LoadConfig(cfgPath)
			if err != nil {
				return agentUsage(err)
			}
			return runAgent(cmd.Context(), cfg)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "/etc/haven/agent.yaml", "agent configuration (YAML)")
	return cmd
}

func agentUsage(err error) error {
	if errors.Is(err, agent.ErrConfig) {
		return usageError(err.Error())
	}
	return err
}

func runAgent(ctx context.Context, cfg *agent.Config) error {
	a, err := agent.New(ctx, cfg)
	if err != nil {
		return agentUsage(err)
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.Serve(ctx, ln) })
	g.Go(func() error { return a.Run(ctx) })
	g.Go(func() error { return a.Heartbeats(ctx) })
	return g.Wait()
}

func newAgentStatusCmd() *cobra.Command {
	var addr string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show a running agent's replication status",
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := &agent.Client{Addr: addr}
			r, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			printStatus(cmd.OutOrStdout(), r)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", envOr("HAVEN_AGENT_ADDR", "127.0.0.1:7717"), "agent status API address ($HAVEN_AGENT_ADDR)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status report as JSON")
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func printStatus(w io.Writer, r *agent.Report) {
	fmt.Fprintf(w, "agent on %s, vault %s, up since %s\n\n", r.Host, r.Vault, r.Started.Local().Format(time.DateTime))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MACHINE\tGROUP\tLAST POINT\tCONSISTENCY\tRPO\tALERT\tCHURN\tUPLOADED\tLAST ERROR")
	for _, m := range r.Machines {
		last, cons := "-", "-"
		if m.LastPoint != nil {
			last, cons = m.LastPoint.Time.Local().Format(time.TimeOnly), m.LastPoint.Consistency+"/"+m.LastPoint.Provider
		}
		rpo := time.Duration(m.RPOSeconds * float64(time.Second)).Round(time.Second).String()
		alert := ""
		switch {
		case m.RPOUnknown:
			rpo, alert = ">= "+rpo, "unknown"
		case m.RPOAlert:
			alert = fmt.Sprintf("> %v", time.Duration(m.RPOAlertSeconds*float64(time.Second)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s/s\t%s\t%s\n", m.Name, m.Group, last, cons, rpo, alert,
			humanize.IBytes(uint64(m.ChurnBPS)), humanize.IBytes(uint64(m.UploadedBytes)), m.LastError)
	}
	tw.Flush()
}
