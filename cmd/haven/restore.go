package main

import (
	"fmt"

	"github.com/haven-dr/haven/internal/vault"
	"github.com/spf13/cobra"
)

func newRestoreCmd() *cobra.Command {
	var vf vaultFlags
	var opt vault.RestoreOptions
	cmd := &cobra.Command{
		Use:   "restore --machine NAME [--point ID|latest|latest-consistent|latest-app|last-clean] --disk NAME --to PATH [--dry-run]",
		Short: "Write a disk of a recovery point to a sparse raw image or block device",
		Long: `Restore writes one disk of a recovery point. A new file is written sparse under a
temporary name and renamed into place only when complete.

Onto an existing image or block device only the chunks that differ are written
(cheap failback). They are all fetched, verified and staged in a temporary file
(--staging-dir) before the target changes; the target is shrunk, if the disk is
smaller, only after everything is written. If the restore fails, the error says
whether the target is untouched or partially written; either way, running the
same command again completes it. A mounted block device is refused.

--dry-run compares and reports what would be written, and writes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			progress, done := newProgress(-1, "restore "+opt.Machine+"/"+opt.Disk, vf.json)
			opt.Progress = progress
			st, err := v.Restore(cmd.Context(), opt)
			done()
			if err != nil {
				return err
			}
			if vf.json {
				return printJSON(st)
			}
			printRestore(opt, st)
			return nil
		},
	}
	vf.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&opt.Machine, "machine", "", "machine name (required)")
	fs.StringVar(&opt.Point, "point", "latest", "recovery point ID (or unique prefix), latest, latest-consistent (crash or app), latest-app or last-clean (kept by an open encryption alert)")
	fs.StringVar(&opt.Disk, "disk", "", "disk name (required)")
	fs.StringVar(&opt.Target, "to", "", "target image file or block device (required)")
	fs.BoolVar(&opt.DryRun, "dry-run", false, "report what would be written, write nothing")
	fs.StringVar(&opt.StagingDir, "staging-dir", "", "where an in-place restore stages the chunks that differ (default: the target's directory; for a device, $TMPDIR)")
	for _, f := range []string{"machine", "disk", "to"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}

func printRestore(opt vault.RestoreOptions, st *vault.RestoreStats) {
	mode := "new image"
	if st.Existing {
		mode = "in place"
	}
	verb, fetched := "wrote", "fetched"
	if st.DryRun {
		verb, fetched = "dry run: would write", "would fetch"
	}
	resize := ""
	if st.Existing && st.TargetSize != st.Size {
		resize = fmt.Sprintf(", size %s -> %s", mib(st.TargetSize), mib(st.Size))
	}
	fmt.Printf("restore %s/%s disk %s -> %s (%s): %s, %s %s in %d chunks (%d unchanged), %s %s%s, %.1fs\n",
		opt.Machine, st.Point, opt.Disk, opt.Target, mode, mib(st.Size), verb, mib(st.BytesWritten), st.ChunksWritten,
		st.ChunksUnchanged, fetched, mib(st.BytesFetched), resize, st.Duration.Seconds())
}
