package main

import (
	"github.com/spf13/cobra"
	"sort"
	"strings"
	"testing"
)

// helpSections parses `haven --help` into section title -> command names.
func helpSections(help string) map[string][]string {
	sections := map[string][]string{}
	title := ""
	for _, line := range strings.Split(help, "\n") {
		switch {
		case line != "" && !strings.HasPrefix(line, " ") && strings.HasSuffix(line, ":"):
			title = line
		case line == "":
			title = ""
		case title != "" && strings.HasPrefix(line, "  "):
			if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "-") {
				sections[title] = append(sections[title], f[0])
			}
		}
	}
	return sections
}

// Every command of the tree shows under its part in `haven --help`, and none
// under cobra's catch-all "Additional Commands".
func TestHelpGroupsEveryCommand(t *testing.T) {
	help, err := runCLI("--help")
	if err != nil {
		t.Fatal(err)
	}
	sections := helpSections(help)
	if extra := sections["Additional Commands:"]; len(extra) > 0 {
		t.Errorf("commands in no group (add them to commandGroups): %v", extra)
	}
	listed := map[string]string{}
	for _, g := range commandGroups {
		want := append([]string(nil), g.commands...)
		if g.group.ID == otherGroup {
			want = append(want, "help", "completion")
		}
		sort.Strings(want)
		got := sections[g.group.Title]
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("section %q lists %v, want %v", g.group.Title, got, want)
		}
		for _, name := range got {
			listed[name] = g.group.Title
		}
	}
	root := executedTree()
	for _, c := range root.Commands() {
		if (c.IsAvailableCommand() || c.Name() == "help") && listed[c.Name()] == "" {
			t.Errorf("command %q is not listed under any part of haven --help", c.Name())
		}
	}
}

// executedTree is the command tree as Execute completes it, with cobra's
// help and completion commands.
func executedTree() *cobra.Command {
	root := newRootCmd()
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	return root
}
