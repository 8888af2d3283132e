package machine_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestStateDirOwnership: a claimed state directory records this process
// as owner and refuses a second claim. Cleanup keeps a directory whose
// owner is another running process (unless forced), and removes one whose
// owner is gone (its pid reused by a later process) or is this process.
func TestStateDirOwnership(t *testing.T) {
	state := t.TempDir()
	other, dead, mine := filepath.Join(state, "other"), filepath.Join(state, "dead"), filepath.Join(state, "mine")
	for _, d := range []string{other, dead, mine} {
		if err := machine.ClaimStateDir(d, "root"); err != nil {
			t.Fatal(err)
		}
	}
	if err := machine.ClaimStateDir(mine); !errors.Is(err, machine.ErrBadSpec) {
		t.Fatalf("second claim: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(mine, machine.OwnerFile))
	if o, perr := vnet.ParseOwner(string(b)); err != nil || perr != nil || o != vnet.Self() {
		t.Fatalf("owner record %q: %v %v", b, err, perr)
	}
	gone := vnet.Self()
	gone.Start++ // this pid, but a process started later: not the owner
	setOwner(t, dead, gone)
	setOwner(t, other, liveProcess(t))
	var killed []string
	kill := func(dir string) { killed = append(killed, filepath.Base(dir)) }
	removed, kept, err := machine.CleanupStateDirs(state, false, kill)
	if !errors.Is(err, vnet.ErrOwned) || !slices.Equal(removed, []string{"dead", "mine"}) ||
		!slices.Equal(kept, []string{"other"}) || !slices.Equal(killed, removed) {
		t.Fatalf("cleanup: removed %v kept %v killed %v: %v", removed, kept, killed, err)
	}
	removed, kept, err = machine.CleanupStateDirs(state, true, kill)
	if err != nil || !slices.Equal(removed, []string{"other"}) || len(kept) != 0 {
		t.Fatalf("forced cleanup: removed %v kept %v: %v", removed, kept, err)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Fatalf("left: %v", ents)
	}
}

func setOwner(t *testing.T, dir string, o vnet.Owner) {
	if err := vnet.WriteOwner(filepath.Join(dir, machine.OwnerFile), o); err != nil {
		t.Fatal(err)
	}
}

// liveProcess starts a process that runs until the test ends.
func liveProcess(t *testing.T) vnet.Owner {
	cmd := exec.Command(testenv.LookPath(t, "cat"))
	if _, err := cmd.StdinPipe(); err != nil { // cat runs until its stdin closes
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	o, ok := vnet.OwnerOf(cmd.Process.Pid)
	if !ok {
		t.Fatal("child not running")
	}
	return o
}
