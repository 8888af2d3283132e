package main

import "github.com/spf13/cobra"

// subcommands lists the top-level commands. One line per command file keeps
// parallel work on separate commands from colliding.
var subcommands = []func() *cobra.Command{
	newDemoCmd,
	newVaultCmd,
	newSnapshotCmd,
	newRestoreCmd,
	newDNSCmd,
	newAgentCmd,
	newSiteCmd,
	newServerCmd,
	newHostCmd,
	newApplyCmd,
	newStatusCmd,
	newFailoverCmd,
	newReprotectCmd,
	newFailbackCmd,
	newJobCmd,
	newMachineCmd,
	newAuditCmd,
	newReportCmd,
	newPointCmd,
	newAlertCmd,
	newVersionCmd,
	newManCmd,
}
