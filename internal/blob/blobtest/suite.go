// Package blobtest is the conformance suite every blob.Backend must pass.
// A backend's test file plugs in with a few lines:
//
//	func TestConformance(t *testing.T) {
//		blobtest.Run(t, func(t *testing.T) blob.Backend { return newEmptyBackend(t) })
//	}
//
// newBackend must return an empty store each time it is called (a fresh
// directory, container or bucket); the suite calls it once per subtest.
package blobtest

import (
	"testing"

	"github.com/haven-dr/haven/internal/blob"
)

// Run runs every conformance check as a subtest.
func Run(t *testing.T, newBackend func(t *testing.T) blob.Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, blob.Backend)
	}{
		{"NotFound", testNotFound},
		{"RoundTrip", testRoundTrip},
		{"Ranges", testRanges},
		{"Overwrite", testOverwrite},
		{"Empty", testEmpty},
		{"Subdirectories", testSubdirectories},
		{"ListPrefix", testListPrefix},
		{"ListStop", testListStop},
		{"ListMany", testListMany},
		{"ConcurrentPuts", testConcurrentPuts},
		{"Delete", testDelete},
		{"Large", testLarge},
		{"InvalidNames", testInvalidNames},
		{"Cancelled", testCancelled},
		{"Location", testLocation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, b)
		})
	}
}
