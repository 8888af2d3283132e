package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// run builds the command tree and executes it, mapping errors to exit codes.
// Each subcommand lives in its own file and adds itself in newRootCmd.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "haven:", err)
	return exitCode(err)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "haven",
		Short:         "Self-hosted site recovery: replicate, fail over, fail back",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	// Cobra adds its help and completion commands when executing, into the
	// group set here; it binds the completion's output then, after SetOut.
	groupCommands(root)
	return root
}
