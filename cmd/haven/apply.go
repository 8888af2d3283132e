package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newApplyCmd() *cobra.Command {
	var f serverFlags
	var file string
	c := &cobra.Command{
		Use:   "apply -f protection.yaml",
		Short: "Declare sites, networks, machines' recovery settings, plans and traffic",
		Long: "Sends the protection document to the server. It is applied whole or not at all:\n" +
			"a bad document is refused with the line and field, and nothing changes.\n" +
			"Applying the same document again changes nothing.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := os.ReadFile(file)
			if err != nil {
				return usageError(err.Error())
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			res, err := c.Apply(cmd.Context(), doc)
			if err != nil {
				return serverErr(err)
			}
			if f.json {
				return printJSONTo(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied %s: config version %d, %d machines, %d plans\n", file, res.Version, res.Machines, res.Plans)
			for _, w := range res.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "", "protection document (YAML, required)")
	_ = c.MarkFlagRequired("file")
	f.add(c)
	return c
}
