package main

import "github.com/spf13/cobra"

// commandGroups sorts the top-level commands by part for `haven --help`.
// A new command needs a line here: TestHelpGroupsEveryCommand fails on a
// command left out, so none falls into cobra's "Additional Commands".
var commandGroups = []struct {
	group    cobra.Group
	commands []string
}{
	{cobra.Group{ID: "protect", Title: "Protect (this site's machines into the vault):"},
		[]string{"agent", "snapshot", "vault", "restore", "point"}},
	{cobra.Group{ID: "recover", Title: "Recover (the control plane and its jobs):"},
		[]string{"server", "apply", "status", "failover", "reprotect", "failback", "job", "audit", "report", "alert"}},
	{cobra.Group{ID: "traffic", Title: "Traffic (where users are sent):"},
		[]string{"dns"}},
	{cobra.Group{ID: "site", Title: "Site (the recovery site's machines and network):"},
		[]string{"host", "machine", "site"}},
	{cobra.Group{ID: otherGroup, Title: "Other:"},
		[]string{"demo", "version", "man"}},
}

// otherGroup also holds cobra's own help and completion commands.
const otherGroup = "other"

// groupCommands adds the groups to root and puts each command in its group.
func groupCommands(root *cobra.Command) {
	groupOf := map[string]string{}
	for _, g := range commandGroups {
		root.AddGroup(&g.group)
		for _, name := range g.commands {
			groupOf[name] = g.group.ID
		}
	}
	root.SetHelpCommandGroupID(otherGroup)
	root.SetCompletionCommandGroupID(otherGroup)
	for _, c := range root.Commands() {
		c.GroupID = groupOf[c.Name()]
	}
}
