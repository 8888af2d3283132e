package server_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/vault"
)

// TestStatusPreservedPoints: an old primary's preserved state is listed
// apart in the status (and not taken as the machine's last point, which
// would hide its RPO) until it is released.
func TestStatusPreservedPoints(t *testing.T) {
	var real, kept string
	e := newEnv(t, func(vv *vault.Vault) {
		img := filepath.Join(t.TempDir(), "db-root.img")
		if err := os.WriteFile(img, []byte(strings.Repeat("haven ", 20000)), 0o600); err != nil {
			t.Fatal(err)
		}
		for i, tags := range []map[string]string{nil, {vault.PreservedTag: "true"}} {
			p, _, err := vv.Snapshot(context.Background(), vault.SnapshotOptions{Machine: "db", Time: time.Now().Add(time.Duration(i-2) * time.Minute),
				Disks: []vault.DiskSource{{Name: "root", Path: img}}, Consistency: vault.CrashConsistent, Tags: tags})
			if err != nil {
				t.Fatal(err)
			}
			if tags == nil {
				real = p.ID
			} else {
				kept = p.ID
			}
		}
	})
	r := e.start(t)
	r.mustApply(t, e.doc())
	db := machineStatus(t, status(t, r), "db")
	if db.LastPoint != real || !slices.Equal(db.Preserved, []string{kept}) {
		t.Fatalf("db = last %s, preserved %v; want last %s, preserved [%s]", db.LastPoint, db.Preserved, real, kept)
	}
	be, err := fileblob.New(e.vaultDir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(context.Background(), be, testPassword, fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.ReleasePoint(context.Background(), "db", kept); err != nil {
		t.Fatal(err)
	}
	if db := machineStatus(t, status(t, r), "db"); len(db.Preserved) != 0 {
		t.Fatalf("released point still listed: %v", db.Preserved)
	}
}
