package main

import (
	"os"
	"path/filepath"

	"github.com/haven-dr/haven/internal/demo"
	"github.com/spf13/cobra"
)

func newDemoCmd() *cobra.Command {
	opt := demo.Options{Password: "haven-demo", DiskSize: 256 << 20}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run Haven's main job on embedded defaults (local vault, sample disk): snapshot, check, restore",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opt.Dir == "" {
				opt.Dir = filepath.Join(os.TempDir(), "haven-demo")
			}
			return demo.Run(cmd.Context(), opt, os.Stdout)
		},
	}
	cmd.Flags().StringVar(&opt.Dir, "dir", "", "work directory (default $TMPDIR/haven-demo)")
	cmd.Flags().Int64Var(&opt.DiskSize, "disk-size", opt.DiskSize, "sample disk size in bytes")
	return cmd
}
