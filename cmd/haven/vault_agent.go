package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/haven-dr/haven/internal/blob/blobopen"
)

// newVaultPrepareAgentCmd readies object storage for an append-only agent,
// run by whoever holds the admin credentials (never on the primary).
func newVaultPrepareAgentCmd() *cobra.Command {
	var (
		vaultURL string
		asJSON   bool
		opt      blobopen.AgentOptions
	)
	cmd := &cobra.Command{
		Use:   "prepare-agent",
		Short: "Make S3 or Azure storage refuse deletes and overwrites from the agent's credentials",
		Long: `Run with the ADMIN credentials in the environment, away from the primary.

s3://BUCKET?...&lock=governance|compliance&retain=30d
  creates the bucket with Object Lock and versioning and gives each --agent
  principal (IAM user ARN on AWS, access key ID on versitygw) a bucket policy
  allowing get, put and list only. The agent uses the same URL with its own key.
azblob://CONTAINER?...  (AZURE_STORAGE_KEY set)
  creates the container and prints a container SAS for the agent
  (read, create, list; no write-over, no delete): give it to the agent as
  AZURE_STORAGE_SAS_TOKEN.

See docs/storage.md for what each service enforces.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if vaultURL == "" {
				vaultURL = os.Getenv("HAVEN_VAULT")
			}
			if vaultURL == "" {
				return usageError("no vault given: use --vault URL or set HAVEN_VAULT")
			}
			acc, err := blobopen.PrepareAgent(cmd.Context(), vaultURL, os.Getenv, opt)
			if errors.Is(err, blobopen.ErrBadURL) {
				return usageError(err.Error())
			}
			if err != nil || asJSON {
				return orJSON(err, acc)
			}
			for _, d := range acc.Done {
				fmt.Println(d)
			}
			fmt.Println("agent URL:", acc.Location)
			keys := make([]string, 0, len(acc.Env))
			for k := range acc.Env {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Printf("agent environment: %s=%s\n", k, acc.Env[k])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&vaultURL, "vault", "", "vault URL (default $HAVEN_VAULT)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().StringArrayVar(&opt.Principals, "agent", nil, "S3: the agent's principal (repeatable)")
	cmd.Flags().DurationVar(&opt.SASExpiry, "sas-expiry", 365*24*time.Hour, "Azure: how long the agent's SAS is valid")
	return cmd
}
