package blobtest

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
)

// RunAppendOnly checks a backend opened with an append-only credential:
// it creates and reads like any backend, a retried identical write
// succeeds, and every delete or overwrite fails with blob.ErrAppendOnly
// and leaves the object as it was. newBackend returns an empty store.
func RunAppendOnly(t *testing.T, newBackend func(t *testing.T) blob.Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, blob.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"Ranges", testRanges},
		{"Subdirectories", testSubdirectories},
		{"ListPrefix", testListPrefix},
		{"InvalidNames", testInvalidNames},
		{"RefusesOverwrite", testRefusesOverwrite},
		{"SamePutAgain", testSamePutAgain},
		{"RefusesDelete", testRefusesDelete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			t.Cleanup(func() { b.Close() })
			tc.fn(t, b)
		})
	}
}

func wantRefused(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, blob.ErrAppendOnly) {
		t.Fatalf("%s: err = %v, want ErrAppendOnly", what, err)
	}
}

func testRefusesOverwrite(t *testing.T, b blob.Backend) {
	first := randBytes(21, 4000)
	put(t, b, "o/x", first)
	for _, other := range [][]byte{randBytes(22, 4000), randBytes(23, 10), nil} {
		wantRefused(t, "Put over existing", b.Put(context.Background(), "o/x", other))
	}
	wantGet(t, b, "o/x", 0, -1, first)
}

func testSamePutAgain(t *testing.T, b blob.Backend) {
	data := randBytes(24, 3000)
	put(t, b, "s", data)
	put(t, b, "s", data)
	wantGet(t, b, "s", 0, -1, data)
}

func testRefusesDelete(t *testing.T, b blob.Backend) {
	data := randBytes(25, 100)
	put(t, b, "d/x", data)
	wantRefused(t, "Delete", b.Delete(context.Background(), "d/x"))
	wantGet(t, b, "d/x", 0, -1, data)
	if got := list(t, b, "d/"); !slices.Equal(got, []string{"d/x"}) {
		t.Fatalf("List after refused Delete = %v", got)
	}
}
