package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
	"github.com/spf13/cobra"
)

// manPages lists the page every user-visible command of the tree gets.
func manPages(c *cobra.Command) map[string]*cobra.Command {
	pages := map[string]*cobra.Command{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		pages[strings.ReplaceAll(c.CommandPath(), " ", "-")+".1"] = c
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
				walk(sub)
			}
		}
	}
	walk(c)
	return pages
}

// `haven man` writes one page per command and nothing else, and man(1)
// renders each with the command's synopsis.
func TestManPagesCoverCommandTree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man1")
	if out, err := runCLI("man", "--dir", dir); err != nil {
		t.Fatalf("haven man: %v\n%s", err, out)
	}
	want := manPages(executedTree())
	got, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, filepath.Base(p))
	}
	sort.Strings(names)
	if len(names) != len(want) {
		t.Errorf("haven man wrote %d pages, the tree has %d commands: %v", len(names), len(want), names)
	}
	for _, name := range []string{"haven.1", "haven-vault-key-add.1", "haven-completion-bash.1", "haven-man.1", "haven-version.1"} {
		if want[name] == nil {
			t.Errorf("command tree has no page %s", name)
		}
	}
	man := testenv.LookPath(t, "man")
	for name, c := range want {
		checkManPage(t, man, filepath.Join(dir, name), c)
	}
}

func checkManPage(t *testing.T, man, path string, c *cobra.Command) {
	t.Helper()
	roff, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("no page for %q: %v", c.CommandPath(), err)
		return
	}
	title := strings.ToUpper(strings.ReplaceAll(c.CommandPath(), " ", "-"))
	if th := `.TH "` + title + `" "1" `; !strings.Contains(string(roff), "\n"+th) {
		t.Errorf("%s: no header %q", path, th)
	}
	cmd := exec.Command(man, "-l", path)
	cmd.Env = append(os.Environ(), "MANWIDTH=200", "MANPAGER=cat", "PAGER=cat")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Errorf("man -l %s: %v\n%s", path, err, stderr.String())
		return
	}
	for _, want := range []string{"NAME", title + "(1)", strings.ToLower(title) + " - ", "SYNOPSIS", c.CommandPath()} {
		if !strings.Contains(string(out), want) {
			t.Errorf("man -l %s lacks %q:\n%s", path, want, out)
		}
	}
}

func TestManNeedsDir(t *testing.T) {
	if _, err := runCLI("man"); exitCode(err) != exitUsage {
		t.Fatalf("haven man without --dir: %v, want a usage error", err)
	}
}
