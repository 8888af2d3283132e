package blobopen_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestBadURLs(t *testing.T) {
	creds := env(map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AZURE_STORAGE_KEY": "a2V5"})
	for _, raw := range []string{
		"",
		"ftp://host/x",
		"s3://",
		"azblob:///prefix",
		"s3://bucket?endpoint=127.0.0.1:1&insecure=maybe",
		"file://otherhost/x",
		"azblob://container", // no account nor endpoint
		"%zz://x",
	} {
		if _, err := blobopen.OpenEnv(context.Background(), raw, blob.Limits{}, creds); !errors.Is(err, blobopen.ErrBadURL) {
			t.Errorf("Open(%q) = %v, want ErrBadURL", raw, err)
		}
	}
	// Credentials missing from the environment.
	for _, raw := range []string{"s3://bucket?endpoint=127.0.0.1:1", "azblob://c?account=a"} {
		if _, err := blobopen.OpenEnv(context.Background(), raw, blob.Limits{}, env(nil)); !errors.Is(err, blobopen.ErrBadURL) {
			t.Errorf("Open(%q) without credentials = %v, want ErrBadURL", raw, err)
		}
	}
}

func TestLocationHasNoSecrets(t *testing.T) {
	e := env(map[string]string{"AWS_ACCESS_KEY_ID": "AKIDSECRET", "AWS_SECRET_ACCESS_KEY": "topsecret", "AZURE_STORAGE_KEY": "c2VjcmV0a2V5"})
	for raw, want := range map[string]string{
		"s3://bk/pre/fix?endpoint=127.0.0.1:9&insecure=true":      "s3://bk/pre/fix?endpoint=127.0.0.1%3A9&insecure=true",
		"azblob://ct?account=acc&endpoint=http://127.0.0.1:9/acc": "azblob://ct?account=acc&endpoint=http%3A%2F%2F127.0.0.1%3A9%2Facc",
	} {
		b, err := blobopen.OpenEnv(context.Background(), raw, blob.DefaultLimits(), e)
		if err != nil {
			t.Fatalf("Open(%q): %v", raw, err)
		}
		if got := b.Location(); got != want {
			t.Errorf("Location() = %q, want %q", got, want)
		}
	}
}

func TestFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for _, raw := range []string{dir, "file://" + dir} {
		b, err := blobopen.Open(context.Background(), raw, blob.DefaultLimits())
		if err != nil {
			t.Fatalf("Open(%q): %v", raw, err)
		}
		exercise(t, b)
	}
}

// exercise runs a short put/get/list/delete cycle through an opened stack.
func exercise(t *testing.T, b blob.Backend) {
	t.Helper()
	ctx := context.Background()
	if err := b.Put(ctx, "keys/k1", []byte("key")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, err := b.Get(ctx, "keys/k1", 1, 10); err != nil || string(got) != "ey" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	var names []string
	if err := b.List(ctx, "keys/", func(fi blob.Info) error { names = append(names, fi.Name); return nil }); err != nil {
		t.Fatalf("List: %v", err)
	}
	if !slices.Equal(names, []string{"keys/k1"}) {
		t.Fatalf("List = %v", names)
	}
	if err := b.Delete(ctx, "keys/k1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.Stat(ctx, "keys/k1"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after Delete = %v", err)
	}
}

func TestPrefixedEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "first")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
	t.Setenv("HAVEN_TO_AWS_ACCESS_KEY_ID", "second")
	get := blobopen.PrefixedEnv("HAVEN_TO_")
	if get("AWS_ACCESS_KEY_ID") != "second" || get("AWS_SECRET_ACCESS_KEY") != "first-secret" || get("AWS_SESSION_TOKEN") != "" {
		t.Fatalf("got %q %q %q", get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"), get("AWS_SESSION_TOKEN"))
	}
}
