package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/spf13/cobra"
)

func newVaultCopyCmd() *cobra.Command {
	var from, to vaultFlags
	var initCopy, jsonOut, onlyNewer bool
	cmd := &cobra.Command{
		Use:   "copy --from URL --to URL [--init]",
		Short: "Bring a second vault up to date from the first (3-2-1); only ever adds to it",
		Long: "Copies the points the second vault lacks, with the packs they need, then the\n" +
			"server's catalog. Every pack is verified before it is uploaded; a point is\n" +
			"written after its data, so a killed copy is resumed by running it again.\n" +
			"Nothing in the second vault is ever deleted or replaced: points pruned or\n" +
			"deleted in the first stay in the second until its own prune.\n\n" +
			"The second vault shares the first's keys (made with --init), under its own\n" +
			"password: --to-password-file, else $HAVEN_TO_PASSWORD, else the first's.\n" +
			"Credentials for --to come from HAVEN_TO_<VARIABLE> (HAVEN_TO_AWS_ACCESS_KEY_ID,\n" +
			"HAVEN_TO_AZURE_STORAGE_KEY, ...), falling back to the unprefixed variable.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to.url == "" {
				return usageError("--to: the second vault's URL is required")
			}
			ctx := cmd.Context()
			src, err := from.open(ctx)
			if err != nil {
				return fmt.Errorf("source: %w", err)
			}
			defer src.Close()
			dst, err := openCopyDest(cmd, &from, &to, src, initCopy)
			if err != nil {
				return err
			}
			defer dst.Close()
			rep, err := dst.Copy(ctx, src, vault.CopyOptions{OnlyNewer: onlyNewer, Progress: func(e vault.CopyEvent) {
				fmt.Fprintf(os.Stderr, "[%d/%d] %s %s: %d packs, %s\n", e.Done, e.Total, e.Machine, e.Point, e.Packs, mib(e.Bytes))
			}})
			if rep != nil {
				printCopyReport(rep, jsonOut)
			}
			if err != nil {
				return err
			}
			return rep.Err()
		},
	}
	from.limits, to.limits = blob.DefaultLimits(), blob.DefaultLimits()
	to.getenv = blobopen.PrefixedEnv("HAVEN_TO_")
	fs := cmd.Flags()
	fs.StringVar(&from.url, "from", "", "the first vault's URL (default $HAVEN_VAULT)")
	fs.StringVar(&from.passwordFile, "from-password-file", "", "the first vault's password (default $HAVEN_PASSWORD, else a prompt)")
	fs.StringVar(&to.url, "to", "", "the second vault's URL")
	fs.StringVar(&to.passwordFile, "to-password-file", "", "the second vault's password (default $HAVEN_TO_PASSWORD, else the first's)")
	fs.BoolVar(&initCopy, "init", false, "create the second vault as a copy of the first if it does not exist yet")
	fs.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	fs.BoolVar(&onlyNewer, "only-newer", false, "copy only points newer than the second vault's newest of their machine (its own retention may then be shorter)")
	addStorageFlags(fs, &from.limits)
	return cmd
}

// openCopyDest opens the second vault, or with --init creates it when
// there is none, sharing the first's keys.
func openCopyDest(cmd *cobra.Command, from, to *vaultFlags, src *vault.Vault, initCopy bool) (*vault.Vault, error) {
	ctx := cmd.Context()
	to.limits = from.limits
	be, err := to.backend(ctx)
	if err != nil {
		return nil, err
	}
	pw := os.Getenv("HAVEN_TO_PASSWORD")
	if to.passwordFile != "" || pw == "" {
		if to.passwordFile == "" {
			to.passwordFile = from.passwordFile
		}
		if pw, err = to.password(false); err != nil {
			return nil, err
		}
	}
	dst, err := vault.Open(ctx, be, pw, vault.Options{KDF: kdfFromEnv()})
	if errors.Is(err, vault.ErrNoVault) && initCopy {
		dst, err = vault.InitCopy(ctx, be, src, pw, vault.Options{KDF: kdfFromEnv()})
		if err == nil {
			fmt.Fprintf(os.Stderr, "created vault %s at %s as a copy of %s\n", dst.Config().ID, be.Location(), src.Backend().Location())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	return dst, nil
}

func printCopyReport(rep *vault.CopyReport, asJSON bool) {
	if asJSON {
		printJSON(rep)
		return
	}
	for _, p := range rep.Problems {
		fmt.Println("error:", p)
	}
	fmt.Printf("copied %d points (%d already there), %d packs (%s), %d catalog versions; %d packs of an earlier run verified and indexed\n",
		rep.Points, rep.Present, rep.Packs, mib(rep.Bytes), rep.Catalogs, rep.Adopted)
	if rep.Older > 0 {
		fmt.Printf("left out %d points older than the second vault's newest (--only-newer)\n", rep.Older)
	}
	if rep.Kept > 0 {
		fmt.Printf("kept %d points that the first vault no longer has\n", rep.Kept)
	}
	if rep.Skipped > 0 {
		fmt.Printf("NOT copied: %d points whose data is damaged or missing in the first vault\n", rep.Skipped)
	}
	fmt.Printf("lag: %s\n", rep.Lag.Round(1e6))
}
