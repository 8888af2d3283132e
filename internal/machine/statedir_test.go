package machine_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/vnet"
)

// TestStateDirOwnership: a claimed state directory records this process
// as owner and refuses a second claim; cleanup keeps it while the owner
// runs (unless forced) and removes one whose owner is gone.
func TestStateDirOwnership(t *testing.T) {
	state := t.TempDir()
	live, dead := filepath.Join(state, "live"), filepath.Join(state, "dead")
	for _, d := range []string{live, dead} {
		if err := machine.ClaimStateDir(d, "root"); err != nil {
			t.Fatal(err)
		}
	}
	if err := machine.ClaimStateDir(live); !errors.Is(err, machine.ErrBadSpec) {
		t.Fatalf("second claim: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(live, machine.OwnerFile))
	if o, perr := vnet.ParseOwner(string(b)); err != nil || perr != nil || o != vnet.Self() {
		t.Fatalf("owner record %q: %v %v", b, err, perr)
	}
	gone := vnet.Self()
	gone.Start++ // this pid, but a process started later: not the owner
	if err := vnet.WriteOwner(filepath.Join(dead, machine.OwnerFile), gone); err != nil {
		t.Fatal(err)
	}
	var killed []string
	kill := func(dir string) { killed = append(killed, filepath.Base(dir)) }
	removed, kept, err := machine.CleanupStateDirs(state, false, kill)
	if !errors.Is(err, vnet.ErrOwned) || !slices.Equal(removed, []string{"dead"}) ||
		!slices.Equal(kept, []string{"live"}) || !slices.Equal(killed, removed) {
		t.Fatalf("cleanup: removed %v kept %v killed %v: %v", removed, kept, killed, err)
	}
	removed, kept, err = machine.CleanupStateDirs(state, true, kill)
	if err != nil || !slices.Equal(removed, []string{"live"}) || len(kept) != 0 {
		t.Fatalf("forced cleanup: removed %v kept %v: %v", removed, kept, err)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Fatalf("left: %v", ents)
	}
}
