package vault

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestCatalogVersionsAreSeparateObjects(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	for i, doc := range []string{`{"config":1}`, `{"config":2,"drills":[]}`} {
		if err := v.WriteCatalog(ctx, "server", uint64(i+1), []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.WriteCatalog(ctx, "server", 2, []byte(`{"config":3}`)); !errors.Is(err, ErrCatalogExists) {
		t.Fatalf("rewriting version 2: %v, want ErrCatalogExists", err)
	}
	if seqs, err := v.CatalogVersions(ctx, "server"); err != nil || len(seqs) != 2 || seqs[0] != 2 || seqs[1] != 1 {
		t.Fatalf("versions %v, %v; want [2 1]", seqs, err)
	}
	if got, err := v.ReadCatalog(ctx, "server", 1); err != nil || string(got) != `{"config":1}` {
		t.Fatalf("version 1: %q, %v", got, err)
	}
	// A second process opening the vault with the password reads it too.
	v2, err := Open(ctx, be, "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	seq, got, skipped, err := v2.LatestCatalog(ctx, "server")
	if err != nil || seq != 2 || len(skipped) != 0 || !strings.Contains(string(got), `"config":2`) {
		t.Fatalf("reopened: %d %q %v %v", seq, got, skipped, err)
	}
	raw, err := be.Get(ctx, "catalog/server.00000000000000000002", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("drills")) {
		t.Fatal("catalog stored in the clear")
	}
	// Check reads what snapshots wrote; a catalog is no problem to it.
	rep, err := v.Check(ctx, CheckOptions{ReadData: true})
	if err != nil || rep.Err() != nil {
		t.Fatalf("check with a catalog: %v, %v", err, rep.Err())
	}
}

// Someone who can write objects but has no key: a version's object
// replaced by another (older) version's sealed bytes, flipped or cut short
// does not verify, and LatestCatalog passes over it to the newest that
// does, saying which it skipped.
func TestCatalogTamperedNewestFallsBack(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	for i := uint64(1); i <= 3; i++ {
		if err := v.WriteCatalog(ctx, "server", i, []byte(`{"v":`+string(rune('0'+i))+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	newest := "catalog/server.00000000000000000003"
	raw, _ := be.Get(ctx, newest, 0, -1)
	older, _ := be.Get(ctx, "catalog/server.00000000000000000001", 0, -1)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"older copy", older},
		{"flipped", flip(raw, len(raw)/2)},
		{"truncated", raw[:len(raw)-1]},
	} {
		if err := be.Put(ctx, newest, tc.data); err != nil {
			t.Fatal(err)
		}
		if _, err := v.ReadCatalog(ctx, "server", 3); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: err = %v, want ErrCorrupt", tc.name, err)
		}
		seq, got, skipped, err := v.LatestCatalog(ctx, "server")
		if err != nil || seq != 2 || string(got) != `{"v":2}` || len(skipped) != 1 || !strings.Contains(skipped[0].Error(), newest) {
			t.Fatalf("%s: latest = %d %q skipped %v, %v; want version 2, naming %s", tc.name, seq, got, skipped, err, newest)
		}
	}
	// Moved from another catalog's name: the name is the AAD.
	if err := v.WriteCatalog(ctx, "other", 9, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	other, _ := be.Get(ctx, "catalog/other.00000000000000000009", 0, -1)
	be.Put(ctx, "catalog/server.00000000000000000009", other)
	if _, err := v.ReadCatalog(ctx, "server", 9); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("renamed: err = %v, want ErrCorrupt", err)
	}
}

// A vault written before catalogs had versions holds catalog/<name>; it
// reads as version 0, below any versioned one.
func TestCatalogUnversionedIsVersionZero(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	if err := v.putSealed(ctx, "catalog/server", []byte(`{"old":true}`)); err != nil {
		t.Fatal(err)
	}
	if seq, got, _, err := v.LatestCatalog(ctx, "server"); err != nil || seq != 0 || string(got) != `{"old":true}` {
		t.Fatalf("legacy: %d %q %v", seq, got, err)
	}
	if err := v.WriteCatalog(ctx, "server", 1, []byte(`{"new":true}`)); err != nil {
		t.Fatal(err)
	}
	if seq, got, _, err := v.LatestCatalog(ctx, "server"); err != nil || seq != 1 || string(got) != `{"new":true}` {
		t.Fatalf("after a versioned write: %d %q %v", seq, got, err)
	}
}

func TestCatalogMissingAndBadName(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	_, _, _, err := v.LatestCatalog(ctx, "server")
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "catalog/server") {
		t.Fatalf("missing: err = %v, want ErrMissing naming catalog/server", err)
	}
	for _, name := range []string{"", "../config", "a/b", "Server", "web.example.com"} {
		if err := v.WriteCatalog(ctx, name, 1, []byte("x")); err == nil {
			t.Fatalf("WriteCatalog(%q) accepted", name)
		}
	}
	if err := v.WriteCatalog(ctx, "server", 0, []byte("x")); err == nil {
		t.Fatal("version 0 accepted")
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}
