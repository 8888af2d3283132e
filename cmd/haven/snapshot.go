package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/vault"
	"github.com/spf13/cobra"
)

func newSnapshotCmd() *cobra.Command {
	var vf vaultFlags
	var machine, consistency, group string
	var disks []string
	var lockWait time.Duration
	cmd := &cobra.Command{
		Use:   "snapshot --machine NAME --disk NAME=PATH [--disk ...]",
		Short: "Take one recovery point of a machine's disks (raw images or block devices)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch consistency {
			case vault.Inconsistent, vault.CrashConsistent, vault.AppConsistent:
			default:
				return usageError(fmt.Sprintf("--consistency %q: want inconsistent, crash or app", consistency))
			}
			srcs, total, err := parseDisks(disks)
			if err != nil {
				return err
			}
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			progress, done := newProgress(total, "snapshot "+machine, vf.json)
			p, st, err := v.Snapshot(cmd.Context(), vault.SnapshotOptions{Machine: machine, Disks: srcs,
				Consistency: consistency, Group: group, Progress: progress, LockWait: lockWait})
			done()
			if err != nil {
				return err
			}
			if vf.json {
				return printJSON(map[string]any{"point": p, "stats": st})
			}
			fmt.Printf("snapshot %s/%s: %s read (%s zero), %d new chunks (%s), %s stored in %d packs, %.1fs (%.0f MB/s)\n",
				p.Machine, p.ID, mib(st.Bytes), mib(st.ZeroBytes), st.NewChunks, mib(st.NewBytes), mib(st.StoredBytes),
				st.Packs, st.Duration.Seconds(), float64(st.Bytes)/1e6/st.Duration.Seconds())
			return nil
		},
	}
	vf.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&machine, "machine", "", "machine name (required)")
	fs.StringArrayVar(&disks, "disk", nil, "disk as NAME=PATH (repeatable)")
	fs.StringVar(&consistency, "consistency", vault.Inconsistent, "what the copy is: inconsistent (disks read while in use), "+
		"crash (the disks did not change while read: a stopped machine, or an LVM/reflink snapshot), app (the application was quiesced too)")
	fs.StringVar(&group, "group", "", "consistency group recorded in the point")
	fs.DurationVar(&lockWait, "lock-wait", time.Minute, "ignored: a snapshot never waits for a prune (kept for scripts)")
	cmd.MarkFlagRequired("machine")
	cmd.MarkFlagRequired("disk")
	return cmd
}

func parseDisks(specs []string) ([]vault.DiskSource, int64, error) {
	var out []vault.DiskSource
	var total int64
	for _, s := range specs {
		name, path, ok := strings.Cut(s, "=")
		if !ok || name == "" || path == "" {
			return nil, 0, usageError(fmt.Sprintf("--disk %q: want NAME=PATH", s))
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, usageError(fmt.Sprintf("disk %s: %v", name, err))
		}
		n, _ := f.Seek(0, 2)
		f.Close()
		total += n
		out = append(out, vault.DiskSource{Name: name, Path: path})
	}
	return out, total, nil
}
