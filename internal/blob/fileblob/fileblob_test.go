package fileblob_test

import (
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobtest"
	"github.com/haven-dr/haven/internal/blob/fileblob"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Backend {
		b, err := fileblob.New(t.TempDir() + "/vault")
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestFromURL(t *testing.T) {
	for raw, want := range map[string]string{
		"file:///srv/vault":          "file:///srv/vault",
		"file://localhost/srv/vault": "file:///srv/vault",
		"/srv/vault/":                "file:///srv/vault",
	} {
		b, err := fileblob.FromURL(raw)
		if err != nil {
			t.Fatalf("FromURL(%q): %v", raw, err)
		}
		if got := b.Location(); got != want {
			t.Errorf("FromURL(%q).Location() = %q, want %q", raw, got, want)
		}
	}
	for _, raw := range []string{"file://otherhost/x", "file:"} {
		if _, err := fileblob.FromURL(raw); err == nil {
			t.Errorf("FromURL(%q) succeeded", raw)
		}
	}
}

// The append-only wrapper over a directory passes the append-only suite, so
// the suite itself is known to accept a correct implementation.
func TestAppendOnlyConformance(t *testing.T) {
	blobtest.RunAppendOnly(t, func(t *testing.T) blob.Backend {
		b, err := fileblob.New(t.TempDir() + "/vault")
		if err != nil {
			t.Fatal(err)
		}
		return blob.NewAppendOnly(b)
	})
}
