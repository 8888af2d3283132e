package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/haven-dr/haven/internal/server"
)

func newServerTokenCmd() *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Manage the server's admin and viewer tokens"}
	var path, role string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Give a role a new token (the old one stops working at once)",
		Long: "Writes a new random token to the role's token file (mode 0600) and its\n" +
			"SHA-256 to state_dir/tokens.json, which a running server reads on its\n" +
			"next request: no restart needed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := server.LoadConfig(path)
			if errors.Is(err, server.ErrConfig) {
				return usageError(err.Error())
			} else if err != nil {
				return err
			}
			if role != "admin" && role != "viewer" {
				return usageError(fmt.Sprintf("--role %q: want admin or viewer", role))
			}
			if err := server.RotateToken(cfg, role); err != nil {
				return err
			}
			file := cfg.TokenFile
			if role == "viewer" {
				file = cfg.ViewerTokenFile
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new %s token written to %s\n", role, file)
			return nil
		},
	}
	rotate.Flags().StringVar(&path, "config", "/etc/haven/server.yaml", "server configuration file")
	rotate.Flags().StringVar(&role, "role", "admin", "admin or viewer")
	c.AddCommand(rotate)
	return c
}
