package vault

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestCatalogRoundTripReplacesWhole(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	for _, doc := range []string{`{"config":1}`, `{"config":2,"drills":[]}`} {
		if err := v.WriteCatalog(ctx, "server", []byte(doc)); err != nil {
			t.Fatal(err)
		}
		got, err := v.ReadCatalog(ctx, "server")
		if err != nil || string(got) != doc {
			t.Fatalf("ReadCatalog = %q, %v; want %q", got, err, doc)
		}
	}
	// A second process opening the vault with the password reads it too.
	v2, err := Open(ctx, be, "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if got, err := v2.ReadCatalog(ctx, "server"); err != nil || !strings.Contains(string(got), `"config":2`) {
		t.Fatalf("reopened: %q, %v", got, err)
	}
	raw, err := be.Get(ctx, "catalog/server", 0, -1)
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

func TestCatalogTamperedIsCorrupt(t *testing.T) {
	ctx := context.Background()
	v, be := testVault(t)
	if err := v.WriteCatalog(ctx, "server", []byte(`{"plans":["web"]}`)); err != nil {
		t.Fatal(err)
	}
	raw, _ := be.Get(ctx, "catalog/server", 0, -1)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"flipped", flip(raw, len(raw)/2)},
		{"truncated", raw[:len(raw)-1]},
	} {
		if err := be.Put(ctx, "catalog/server", tc.data); err != nil {
			t.Fatal(err)
		}
		if _, err := v.ReadCatalog(ctx, "server"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: err = %v, want ErrCorrupt", tc.name, err)
		}
	}
	// Moved from another name: the name is the AAD.
	if err := v.WriteCatalog(ctx, "other", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	other, _ := be.Get(ctx, "catalog/other", 0, -1)
	be.Put(ctx, "catalog/server", other)
	if _, err := v.ReadCatalog(ctx, "server"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("renamed: err = %v, want ErrCorrupt", err)
	}
}

func TestCatalogMissingAndBadName(t *testing.T) {
	ctx := context.Background()
	v, _ := testVault(t)
	_, err := v.ReadCatalog(ctx, "server")
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "catalog/server") {
		t.Fatalf("missing: err = %v, want ErrMissing naming catalog/server", err)
	}
	for _, name := range []string{"", "../config", "a/b", "Server", "web.example.com"} {
		if err := v.WriteCatalog(ctx, name, []byte("x")); err == nil {
			t.Fatalf("WriteCatalog(%q) accepted", name)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x40
	return c
}
