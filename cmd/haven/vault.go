package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/haven-dr/haven/internal/vault"
	"github.com/spf13/cobra"
)

func newVaultCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "vault", Short: "Create, inspect, check and prune the vault of recovery points"}
	cmd.AddCommand(newVaultInitCmd(), newVaultKeyCmd(), newVaultPointsCmd(), newVaultStatsCmd(),
		newVaultCheckCmd(), newVaultPruneCmd(), newVaultPrepareAgentCmd(), newVaultCopyCmd(), newVaultServeCmd())
	return cmd
}

func newVaultInitCmd() *cobra.Command {
	var vf vaultFlags
	var chunkSize int
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new vault at --vault",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			be, err := vf.backend(cmd.Context())
			if err != nil {
				return err
			}
			pw, err := vf.password(true)
			if err != nil {
				return err
			}
			v, err := vault.Init(cmd.Context(), be, pw, vault.Options{KDF: kdfFromEnv(), ChunkSize: chunkSize})
			if err != nil {
				return err
			}
			defer v.Close()
			if vf.json {
				return printJSON(v.Config())
			}
			fmt.Printf("created vault %s at %s (chunk size %d KiB)\n", v.Config().ID, be.Location(), v.Config().ChunkSize>>10)
			return nil
		},
	}
	vf.register(cmd)
	cmd.Flags().IntVar(&chunkSize, "chunk-size", vault.DefaultChunkSize, "chunk size in bytes (multiple of 4096)")
	return cmd
}

func newVaultKeyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Manage the passwords that open the vault"}
	var vf vaultFlags
	var newPwFile string
	add := &cobra.Command{
		Use: "add", Short: "Add a password (from --new-password-file or a prompt)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			nf := vaultFlags{passwordFile: newPwFile}
			pw := ""
			if newPwFile != "" {
				pw, err = nf.password(false)
			} else {
				pw, err = promptPassword("new password: ", true)
			}
			if err != nil {
				return err
			}
			id, err := v.AddKey(cmd.Context(), pw)
			if err != nil {
				return err
			}
			fmt.Println("added key", id)
			return nil
		},
	}
	add.Flags().StringVar(&newPwFile, "new-password-file", "", "file holding the new password")
	list := &cobra.Command{
		Use: "list", Short: "List keys", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			keys, err := v.Keys(cmd.Context())
			if err != nil || vf.json {
				return orJSON(err, keys)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, " \tID\tCREATED\tHOST\tUSER")
			for _, k := range keys {
				mark := " "
				if k.Current {
					mark = "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, k.ID, k.Created.Format("2006-01-02 15:04:05"), k.Host, k.User)
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use: "remove ID", Short: "Remove a key (not the one in use)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			if err := v.RemoveKey(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Println("removed key", args[0])
			return nil
		},
	}
	vf.register(cmd)
	cmd.AddCommand(add, list, remove)
	return cmd
}

func orJSON(err error, v any) error {
	if err != nil {
		return err
	}
	return printJSON(v)
}

func newVaultPointsCmd() *cobra.Command {
	var vf vaultFlags
	var machine string
	cmd := &cobra.Command{
		Use: "points [--machine NAME]", Short: "List recovery points", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			points, err := v.Points(cmd.Context(), machine)
			if err != nil || vf.json {
				return orJSON(err, points)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MACHINE\tPOINT\tTIME\tCONSISTENCY\tDISKS\tSIZE")
			for _, p := range points {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", p.Machine, p.ID, p.Time.Local().Format("2006-01-02 15:04:05"),
					p.Consistency, len(p.Disks), mib(p.Size()))
			}
			return tw.Flush()
		},
	}
	vf.register(cmd)
	cmd.Flags().StringVar(&machine, "machine", "", "only this machine")
	return cmd
}

func newVaultStatsCmd() *cobra.Command {
	var vf vaultFlags
	cmd := &cobra.Command{
		Use: "stats", Short: "Logical size, stored size and dedup ratio", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			st, err := v.Stats(cmd.Context())
			if err != nil || vf.json {
				return orJSON(err, st)
			}
			fmt.Printf("machines:        %d\npoints:          %d\nlogical size:    %s\nunique data:     %s\nstored size:     %s in %d objects\ndedup ratio:     %.1fx\n",
				st.Machines, st.Points, mib(st.LogicalBytes), mib(st.UniqueBytes), mib(st.StoredBytes), st.Objects, st.DedupRatio)
			return nil
		},
	}
	vf.register(cmd)
	return cmd
}

func newVaultCheckCmd() *cobra.Command {
	var vf vaultFlags
	var opt vault.CheckOptions
	cmd := &cobra.Command{
		Use: "check [--read-data]", Short: "Verify the vault's structure, and with --read-data every byte", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			rep, err := v.Check(cmd.Context(), opt)
			if err != nil {
				return err
			}
			if vf.json {
				if err := printJSON(rep); err != nil {
					return err
				}
				return rep.Err()
			}
			for _, p := range rep.Problems {
				fmt.Println("error:", p)
			}
			depth := "structure"
			if opt.ReadData {
				depth = "structure and all data"
			}
			fmt.Printf("checked %s: %d points, %d index objects, %d packs (%s), %d unreferenced packs: %d problems\n",
				depth, rep.Points, rep.Indexes, rep.Packs, mib(rep.PackBytes), rep.UnreferencedPacks, len(rep.Problems))
			return rep.Err()
		},
	}
	vf.register(cmd)
	cmd.Flags().BoolVar(&opt.ReadData, "read-data", false, "download and verify every pack")
	return cmd
}

func newVaultPruneCmd() *cobra.Command {
	var vf vaultFlags
	var opt vault.PruneOptions
	cmd := &cobra.Command{
		Use:   "prune --keep-last N | --keep-within D | --keep-hourly N | --keep-daily N | --keep-weekly N [--dry-run]",
		Short: "Forget points outside the retention policy and delete the data only they used",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opt.Retention.Empty() {
				return usageError("give at least one --keep-* rule")
			}
			v, err := vf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer v.Close()
			rep, err := v.Prune(cmd.Context(), opt)
			if err != nil || vf.json {
				return orJSON(err, rep)
			}
			for _, d := range rep.Decisions {
				verdict := "remove"
				if d.Keep {
					verdict = "keep  "
				}
				fmt.Printf("%s %s/%s %s %s\n", verdict, d.Point.Machine, d.Point.ID, d.Point.Time.Local().Format("2006-01-02 15:04:05"), d.Reasons)
			}
			if opt.DryRun {
				fmt.Println("dry run: nothing removed")
				return nil
			}
			fmt.Printf("forgot %d points; deleted %d packs (%s); repacked %d; %d packs kept (%d partly used)\n",
				rep.Forgotten, rep.DeletedPacks, mib(rep.DeletedBytes), rep.RepackedPacks, rep.KeptPacks, rep.PartlyUsed)
			if rep.MarkedPacks > 0 || rep.Unmarked > 0 {
				fmt.Printf("marked %d unused packs (%s) for deletion by a later prune; %d marked packs are in use again\n",
					rep.MarkedPacks, mib(rep.MarkedBytes), rep.Unmarked)
			}
			if rep.Deferred != "" {
				fmt.Println("deletion deferred:", rep.Deferred)
			}
			if rep.Retained > 0 {
				fmt.Printf("%d objects still locked by the storage (retained): a later prune deletes them\n", rep.Retained)
			}
			return nil
		},
	}
	vf.register(cmd)
	fs := cmd.Flags()
	fs.IntVar(&opt.Retention.Last, "keep-last", 0, "keep the newest N points of each machine")
	fs.DurationVar(&opt.Retention.Within, "keep-within", 0, "keep points younger than this (e.g. 2h)")
	fs.IntVar(&opt.Retention.Hourly, "keep-hourly", 0, "keep the newest point of each of the last N hours that have points")
	fs.IntVar(&opt.Retention.Daily, "keep-daily", 0, "keep one point for each of the last N days")
	fs.IntVar(&opt.Retention.Weekly, "keep-weekly", 0, "keep one point for each of the last N weeks")
	fs.StringVar(&opt.Machine, "machine", "", "only this machine's points")
	fs.BoolVar(&opt.DryRun, "dry-run", false, "show what would be removed")
	fs.Float64Var(&opt.RepackUnused, "repack-unused", vault.DefaultRepackUnused,
		"rewrite packs whose share of unused bytes exceeds this (0: never)")
	fs.DurationVar(&opt.LockWait, "lock-wait", time.Minute, "how long to wait for another prune")
	return cmd
}
