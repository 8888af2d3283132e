package blobopen_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
)

// FuzzOpen: any string either opens or fails with ErrBadURL, never panics,
// and an opened backend's Location never contains the secrets.
func FuzzOpen(f *testing.F) {
	for _, s := range []string{"file:///tmp/x", "/tmp/x", "s3://b/p?endpoint=127.0.0.1:1&insecure=true",
		"azblob://c/p?endpoint=http://127.0.0.1:1/a&account=a", "s3://", "azblob://%zz", "x://y", "file:"} {
		f.Add(s)
	}
	e := env(map[string]string{"AWS_ACCESS_KEY_ID": "AKIDFUZZ", "AWS_SECRET_ACCESS_KEY": "SECRETFUZZ", "AZURE_STORAGE_KEY": "a2V5RlVaWg=="})
	f.Fuzz(func(t *testing.T, raw string) {
		b, err := blobopen.OpenEnv(context.Background(), raw, blob.Limits{}, e)
		if err != nil {
			if !errors.Is(err, blobopen.ErrBadURL) {
				t.Fatalf("Open(%q) = %v, want ErrBadURL", raw, err)
			}
			return
		}
		loc := b.Location()
		for _, secret := range []string{"SECRETFUZZ", "a2V5RlVaWg=="} {
			if strings.Contains(loc, secret) && !strings.Contains(raw, secret) {
				t.Fatalf("Location %q leaks a secret", loc)
			}
		}
	})
}
