package main

import (
	"fmt"
	"os"

	"github.com/haven-dr/haven/internal/buildinfo"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func newManCmd() *cobra.Command {
	var dir string
	c := &cobra.Command{
		Use:   "man --dir DIR",
		Short: "Write a man page for every command into DIR",
		Long: "Writes one page per command (haven.1, haven-vault.1, haven-vault-key-add.1, ...)\n" +
			"generated from the command tree, so the pages say what this build does.\n" +
			"Install them with: haven man --dir /usr/local/share/man/man1 && mandb.\n" +
			"SOURCE_DATE_EPOCH, if set, fixes the date in the pages (reproducible builds).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError("--dir: want the directory to write the pages into")
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			return writeManPages(cmd.Root(), dir)
		},
	}
	c.Flags().StringVar(&dir, "dir", "", "directory to write the pages into (created if missing)")
	return c
}

func writeManPages(root *cobra.Command, dir string) error {
	// The generator's default footer names cobra and today's date, which
	// makes every build's pages differ; the source line names the build.
	disableAutoGenTag(root)
	header := &doc.GenManHeader{
		Section: "1",
		Source:  "Haven " + buildinfo.Read().Version,
		Manual:  "Haven Manual",
	}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}

func disableAutoGenTag(c *cobra.Command) {
	c.DisableAutoGenTag = true
	for _, sub := range c.Commands() {
		disableAutoGenTag(sub)
	}
}
