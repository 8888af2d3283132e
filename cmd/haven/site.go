package main

import (
	"errors"
	"fmt"

	"github.com/haven-dr/haven/internal/machine/nsdrv"
	"github.com/haven-dr/haven/internal/machine/qemudrv"
	"github.com/haven-dr/haven/internal/vnet"
	"github.com/spf13/cobra"
)

func newSiteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "site",
		Short: "Recovery-site runtime: networks and machines on this host",
	}
	cmd.AddCommand(newSiteCleanupCmd())
	return cmd
}

func newSiteCleanupCmd() *cobra.Command {
	var prefix, loopPrefix, nsState, qemuState string
	var force bool
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove machines, loop devices and namespaces a crashed run left behind",
		Long: `Kills machines recorded in the drivers' state directories, detaches loop
devices tagged by the ns driver and deletes network namespaces whose name
starts with --prefix (with every bridge, veth and tap inside them).

Each of these records the Haven process that made it. Whatever belongs to
a Haven that is still running (a server in the middle of a failover) is
kept, named with its owner's pid, and the command fails; --force removes
it anyway.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			qc, nc, vc := qemudrv.Cleanup, nsdrv.Cleanup, vnet.CleanupNamespaces
			if force {
				qc, nc, vc = qemudrv.ForceCleanup, nsdrv.ForceCleanup, vnet.ForceCleanupNamespaces
			}
			q, qerr := qc(qemuState)
			m, merr := nc(nsState, loopPrefix)
			n, nerr := vc(vnet.Netlink{}, prefix)
			for _, r := range append(append(q, m...), prefixed("netns ", n)...) {
				fmt.Fprintln(cmd.OutOrStdout(), "removed", r)
			}
			err := errors.Join(qerr, merr, nerr)
			if errors.Is(err, vnet.ErrOwned) {
				return fmt.Errorf("%w\nkept what running haven processes own; --force removes it anyway", err)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "also remove what a running haven process owns")
	cmd.Flags().StringVar(&prefix, "prefix", vnet.Prefix, "namespace name prefix to remove")
	cmd.Flags().StringVar(&loopPrefix, "loop-prefix", vnet.Prefix+"-", "tag prefix of loop devices to detach")
	cmd.Flags().StringVar(&nsState, "ns-state", nsdrv.DefaultStateDir, "ns driver state directory")
	cmd.Flags().StringVar(&qemuState, "qemu-state", qemudrv.DefaultStateDir, "qemu driver state directory")
	return cmd
}

func prefixed(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}
