package rig

import (
	"os/exec"
	"strings"
	"testing"
)

// TestShellJoinPastes: a printed command, run by /bin/sh, gets back the
// exact arguments.
func TestShellJoinPastes(t *testing.T) {
	args := []string{"failover", "cleanup", "--note", "haven demo drill", "it's", "$HOME", ""}
	got, err := exec.Command("/bin/sh", "-c", "for a in "+shellJoin(args)+`; do printf '[%s]\n' "$a"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "[" + strings.Join(args, "]\n[") + "]\n"
	if string(got) != want {
		t.Fatalf("sh saw\n%s\nwant\n%s", got, want)
	}
}
