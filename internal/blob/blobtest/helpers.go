package blobtest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
)

// randBytes returns n pseudo-random bytes, different for each seed.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, b blob.Backend, name string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), name, data); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func get(t *testing.T, b blob.Backend, name string, off, n int64) []byte {
	t.Helper()
	data, err := b.Get(context.Background(), name, off, n)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", name, off, n, err)
	}
	return data
}

func wantGet(t *testing.T, b blob.Backend, name string, off, n int64, want []byte) {
	t.Helper()
	got := get(t, b, name, off, n)
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q, %d, %d) = %d bytes, want %d bytes (equal prefix: %v)",
			name, off, n, len(got), len(want), bytes.HasPrefix(got, want[:min(len(want), len(got))]))
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("%s: err = %v, want ErrNotFound", what, err)
	}
}

// list returns the sorted names under prefix and checks each Info.
func list(t *testing.T, b blob.Backend, prefix string) []string {
	t.Helper()
	var names []string
	err := b.List(context.Background(), prefix, func(fi blob.Info) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	sort.Strings(names)
	return names
}

func sizes(t *testing.T, b blob.Backend, prefix string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	err := b.List(context.Background(), prefix, func(fi blob.Info) error {
		m[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return m
}
