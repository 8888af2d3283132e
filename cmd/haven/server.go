package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/haven-dr/haven/internal/server"
)

func newServerCmd() *cobra.Command {
	var path string
	var recoverVault, force, newAdmin bool
	var useCopy string
	c := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: recovery plans, failover and failback jobs, API",
		Long: "Runs at the recovery site. Keeps its state in SQLite under state_dir, reads\n" +
			"recovery points from the vault, keeps standby images current, resumes\n" +
			"unfinished jobs after a restart and serves the API (token in token_file).\n" +
			"After every change it saves its state to the vault's catalog, so on a new\n" +
			"machine --recover-from-vault rebuilds it from the vault URL and password.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := server.LoadConfig(path)
			if errors.Is(err, server.ErrConfig) {
				return usageError(err.Error())
			} else if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			if useCopy != "" {
				if err := cfg.UseCopy(useCopy); err != nil {
					return usageError(err.Error())
				}
				log.Warn("working on a copy of the vault instead of the vault; no copies run", "copy", useCopy, "vault", cfg.Vault)
			}
			if recoverVault {
				err := server.RecoverFromVault(cmd.Context(), cfg, force, log)
				if errors.Is(err, server.ErrStateExists) || errors.Is(err, server.ErrConfig) {
					return usageError(err.Error())
				} else if err != nil {
					return err
				}
				if newAdmin {
					if err := server.RotateToken(cfg, "admin"); err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "new admin token written to %s; the old admin token no longer works\n", cfg.TokenFile)
				}
			} else if newAdmin {
				return usageError("--new-admin-token goes with --recover-from-vault (on a running server: haven server token rotate)")
			}
			s, err := server.New(cmd.Context(), cfg, server.Options{Logger: log})
			if errors.Is(err, server.ErrConfig) {
				return usageError(err.Error())
			} else if err != nil {
				return err
			}
			defer s.Close()
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				return usageError("listen: " + err.Error())
			}
			return s.Run(cmd.Context(), ln)
		},
	}
	c.Flags().StringVar(&path, "config", "/etc/haven/server.yaml", "server configuration file")
	c.Flags().BoolVar(&recoverVault, "recover-from-vault", false,
		"rebuild the state (config, plans, drill, point and job history) and credentials (token files, token hashes, TLS CA) from the catalog the last server wrote to the vault, then run")
	c.Flags().StringVar(&useCopy, "use-copy", "", "work on this copy (server config copies:) instead of the vault, when the vault is lost")
	c.AddCommand(newServerTokenCmd())
	c.Flags().BoolVar(&newAdmin, "new-admin-token", false,
		"with --recover-from-vault: give the admin a new token (written to token_file) instead of the lost server's")
	c.Flags().BoolVar(&force, "force", false, "with --recover-from-vault: move an existing SQLite state.db aside instead of refusing")
	return c
}
