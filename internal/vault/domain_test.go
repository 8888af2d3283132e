package vault

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// firstPage returns a single-page disk's page ID and the chunk IDs it lists.
func firstPage(t *testing.T, v *Vault, p *Point) (ID, []ID) {
	t.Helper()
	ctx := context.Background()
	idx, err := v.loadIndex(ctx, forRead)
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Disks[0].Pages[0]
	plain, err := v.readBlob(ctx, idx, pid)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := decodePage(plain)
	if err != nil {
		t.Fatal(err)
	}
	return pid, ids
}

func snapBytes(t *testing.T, v *Vault, machine string, b []byte) *Point {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p, _ := snap(t, v, machine, DiskSource{Name: "d", Path: path})
	return p
}

// Chunk IDs, page IDs and the config MAC are keyed hashes under different
// keys: equal bytes hashed for different purposes get unrelated values.
func TestKeyedHashDomainsAreSeparate(t *testing.T) {
	v, be := testVault(t)
	// Disk B's page lists one chunk ID; disk A holds exactly those 32 bytes,
	// so A's chunk has the same plaintext as B's page.
	pageB, idsB := firstPage(t, v, snapBytes(t, v, "b", []byte("some bytes on disk b")))
	_, idsA := firstPage(t, v, snapBytes(t, v, "a", idsB[0][:]))
	if idsA[0] == pageB {
		t.Fatalf("a chunk and a page with equal bytes have the same ID %s", pageB)
	}
	// A disk holding the config body: its chunk ID must not be the config's MAC.
	cfg, _ := getObject(context.Background(), be, configName)
	body, mac, err := splitSigned(configName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, idsC := firstPage(t, v, snapBytes(t, v, "c", bytes.Clone(body)))
	if idsC[0].String() == mac {
		t.Fatalf("a chunk holding the config body has the config's MAC as its ID")
	}
	// Both points still restore (pages and chunks verify under their keys).
	for _, m := range []string{"a", "b", "c"} {
		restore(t, v, m, "latest", "d", filepath.Join(t.TempDir(), m))
	}
	rep, err := v.Check(context.Background(), CheckOptions{ReadData: true})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("check: %v %v", rep.Problems, err)
	}
}

// Storage sees no machine names: a machine's points live under a keyed hash
// of its name, and are still listed per machine without reading others.
func TestPointNamesHideMachine(t *testing.T) {
	v, be := testVault(t)
	snapBytes(t, v, "payroll-db", []byte("x"))
	snapBytes(t, v, "web", []byte("y"))
	names, err := listNames(context.Background(), be, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.Contains(n, "payroll") || strings.Contains(n, "web") {
			t.Fatalf("object name %q reveals a machine name", n)
		}
	}
	for _, m := range []string{"payroll-db", "web"} {
		ps, err := v.Points(context.Background(), m)
		if err != nil || len(ps) != 1 || ps[0].Machine != m {
			t.Fatalf("points of %s: %v %v", m, ps, err)
		}
	}
	if all, _ := v.Points(context.Background(), ""); len(all) != 2 {
		t.Fatalf("all points: %d, want 2", len(all))
	}
}
