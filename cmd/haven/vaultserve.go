package main

import (
	"errors"

	"github.com/haven-dr/haven/internal/vaultserve"
	"github.com/spf13/cobra"
)

func newVaultServeCmd() *cobra.Command {
	var o vaultserve.Options
	cmd := &cobra.Command{
		Use:   "serve --dir DIR --agent-token-file F [--admin-token-file F] [--tls-dir DIR | --cert F --key F]",
		Short: "Serve vaults from a local directory over HTTPS; agent tokens may only add objects",
		Long: "A hardened repository for a separate machine: agents (token of --agent-token-file) create,\n" +
			"read and list objects, never delete or overwrite them; only the --admin-token-file token\n" +
			"deletes (prune), and with --delete-delay only objects older than it. Token files are\n" +
			"created (0600) at the first start. Clients use the vault URL https://HOST:PORT/NAME?ca=CA_FILE\n" +
			"with HAVEN_VAULT_TOKEN or HAVEN_VAULT_TOKEN_FILE. See docs/storage.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := vaultserve.Run(cmd.Context(), o, nil)
			if errors.Is(err, vaultserve.ErrOptions) {
				return usageError(err.Error())
			}
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.Dir, "dir", "", "directory holding the vaults (one per URL path)")
	fs.StringVar(&o.Listen, "listen", ":8443", "address to serve HTTPS on")
	fs.StringVar(&o.TLSDir, "tls-dir", "", "where a CA (ca.crt, for clients' ?ca=) and certificate are made at first start")
	fs.StringVar(&o.CertFile, "cert", "", "TLS certificate (PEM) instead of --tls-dir")
	fs.StringVar(&o.KeyFile, "key", "", "TLS key (PEM) for --cert")
	fs.StringVar(&o.AgentTokenFile, "agent-token-file", "", "token of agents: create, read, list")
	fs.StringVar(&o.AdminTokenFile, "admin-token-file", "", "token of the admin: also delete (prune); none: nothing can delete")
	fs.DurationVar(&o.DeleteDelay, "delete-delay", 0, "refuse deletes of objects younger than this, even the admin's")
	return cmd
}
