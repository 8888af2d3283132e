package main

import (
	"fmt"
	"io"

	"github.com/haven-dr/haven/internal/buildinfo"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/spf13/cobra"
)

// versionReport is what a bug report needs: the build, and the on-disk
// formats it reads and writes, which decide whether an upgrade or a
// downgrade can open the vault and the state database.
type versionReport struct {
	buildinfo.Info
	VaultFormat       int `json:"vault_format"`        // the version new vaults get
	VaultFormatOldest int `json:"vault_format_oldest"` // the oldest this build opens
	SchemaSQLite      int `json:"state_schema_sqlite"`
	SchemaPostgres    int `json:"state_schema_postgres"`
}

func currentVersion() versionReport {
	return versionReport{
		Info:              buildinfo.Read(),
		VaultFormat:       vault.FormatVersion,
		VaultFormatOldest: vault.OldestFormatVersion,
		SchemaSQLite:      store.SQLiteSchemaVersion(),
		SchemaPostgres:    store.PostgresSchemaVersion(),
	}
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version",
		Short: "Print Haven's version, commit, Go version and on-disk format versions",
		Long: "Prints the build (version, commit, build date, Go version), the vault format\n" +
			"new vaults get and the oldest one this build opens, and the state database\n" +
			"schema version for SQLite and PostgreSQL (the number of migrations): a\n" +
			"vault or database newer than these was written by a newer Haven.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := currentVersion()
			if asJSON {
				return printJSONTo(cmd.OutOrStdout(), r)
			}
			printVersion(cmd.OutOrStdout(), r)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printVersion(w io.Writer, r versionReport) {
	commit := r.Commit
	if r.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "haven %s\n", r.Version)
	fmt.Fprintf(w, "commit:        %s\n", commit)
	if r.BuildDate != "" {
		fmt.Fprintf(w, "built:         %s\n", r.BuildDate)
	}
	fmt.Fprintf(w, "go:            %s\n", r.GoVersion)
	fmt.Fprintf(w, "vault format:  %d (opens %d to %d)\n", r.VaultFormat, r.VaultFormatOldest, r.VaultFormat)
	fmt.Fprintf(w, "state schema:  sqlite %d, postgresql %d\n", r.SchemaSQLite, r.SchemaPostgres)
}
