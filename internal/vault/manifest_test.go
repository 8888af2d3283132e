package vault

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// A manifest missing a required field (docs/vault-format.md) is reported as
// corrupt by every reader, never acted on.
func TestManifestRequiredFields(t *testing.T) {
	cases := map[string]func(p *Point){
		"chunk size 0":  func(p *Point) { p.ChunkSize = 0 },
		"no time":       func(p *Point) { p.Time = time.Time{} },
		"no disks":      func(p *Point) { p.Disks = nil },
		"negative size": func(p *Point) { p.Disks[0].Size = -1 },
		"no disk name":  func(p *Point) { p.Disks[0].Name = "" },
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			v, _ := testVault(t)
			p := snapBytes(t, v, "m", []byte("some data"))
			damage(p)
			if err := v.savePoint(context.Background(), p); err != nil {
				t.Fatal(err)
			}
			_, err := v.Restore(context.Background(), RestoreOptions{Machine: "m", Point: "latest", Disk: "d",
				Target: filepath.Join(t.TempDir(), "out")})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("restore of a manifest with %s: got %v, want ErrCorrupt", name, err)
			}
		})
	}
}
