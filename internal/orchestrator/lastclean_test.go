package orchestrator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/vault"
)

// TestLastCleanPoints: with no open encryption alert last-clean is
// refused; with one on db, both members of the group come from db's last
// clean instant, not from the newer points; a closed alert no longer
// counts.
func TestLastCleanPoints(t *testing.T) {
	ctx := context.Background()
	a, v, disks := groupAgent(t)
	stop := writer(t, disks["db"], disks["web"])
	defer stop()
	for range 4 {
		if err := a.Cycle(ctx, "shop"); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	groups := map[string]string{"db": "shop", "web": "shop"}
	all := []string{"db", "web"}
	if _, _, err := choosePoints(ctx, v, all, groups, PointLastClean); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("last-clean without an alert: %v, want ErrPrecondition", err)
	}
	db, _ := v.Points(ctx, "db")
	clean, suspect := db[1], db[2]
	err := v.PutHold(ctx, vault.Hold{Machine: "db", Disk: "data", FirstSuspect: suspect.ID, SuspectTime: suspect.Time,
		LastClean: clean.ID, Detected: time.Now(), Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	pts, notes, err := choosePoints(ctx, v, all, groups, PointLastClean)
	if err != nil {
		t.Fatal(err)
	}
	if pts["db"].ID != clean.ID || !pts["web"].Time.Equal(clean.Time) {
		t.Fatalf("last-clean: db %s, web at %s; want db %s and web of its instant %s", pts["db"].ID, pts["web"].Time, clean.ID, clean.Time)
	}
	if len(notes) == 0 || !strings.Contains(notes[0], "last clean") {
		t.Fatalf("notes %q", notes)
	}
	if _, err := v.CloseHold(ctx, "db", suspect.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := choosePoints(ctx, v, all, groups, PointLastClean); !errors.Is(err, ErrPrecondition) {
		t.Fatalf("last-clean after the close: %v, want ErrPrecondition", err)
	}
}
