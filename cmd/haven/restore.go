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
		Use:   "restore --machine NAME [--point ID|latest] --disk NAME --to PATH",
		Short: "Write a disk of a recovery point to a sparse raw image or block device",
		Long: `Restore writes one disk of a recovery point. A new file is written sparse under a
temporary name and renamed into place only when complete. Onto an existing image or
device only the chunks that differ are fetched and written (cheap failback).`,
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
			mode := "new image"
			if st.Existing {
				mode = "in place"
			}
			fmt.Printf("restore %s/%s disk %s -> %s (%s): %s, wrote %s in %d chunks (%d unchanged), fetched %s, %.1fs\n",
				opt.Machine, st.Point, opt.Disk, opt.Target, mode, mib(st.Size), mib(st.BytesWritten), st.ChunksWritten,
				st.ChunksUnchanged, mib(st.BytesFetched), st.Duration.Seconds())
			return nil
		},
	}
	vf.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&opt.Machine, "machine", "", "machine name (required)")
	fs.StringVar(&opt.Point, "point", "latest", "recovery point ID (or unique prefix), or latest")
	fs.StringVar(&opt.Disk, "disk", "", "disk name (required)")
	fs.StringVar(&opt.Target, "to", "", "target image file or block device (required)")
	for _, f := range []string{"machine", "disk", "to"} {
		cmd.MarkFlagRequired(f)
	}
	return cmd
}
