package main

import (
	"testing"

	"github.com/spf13/pflag"

	"github.com/haven-dr/haven/internal/blob"
)

func TestStorageFlags(t *testing.T) {
	lim := blob.DefaultLimits()
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	addStorageFlags(fs, &lim)
	err := fs.Parse([]string{"--limit-upload", "10MiB", "--limit-download=1.5 MB/s", "--max-concurrency", "3", "--retries=0"})
	if err != nil {
		t.Fatal(err)
	}
	want := blob.Limits{UploadBytesPerSec: 10 << 20, DownloadBytesPerSec: 1_500_000, MaxConcurrency: 3,
		RetryBase: blob.DefaultRetryBase, RetryMax: blob.DefaultRetryMax}
	if lim != want {
		t.Fatalf("limits = %+v, want %+v", lim, want)
	}
	if err := fs.Parse([]string{"--limit-upload", "fast"}); err == nil {
		t.Fatal("--limit-upload fast accepted")
	}
}

func TestStorageFlagDefaults(t *testing.T) {
	lim := blob.DefaultLimits()
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	addStorageFlags(fs, &lim)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if lim != blob.DefaultLimits() {
		t.Fatalf("defaults changed to %+v", lim)
	}
	if got := fs.Lookup("limit-upload").DefValue; got != "0" {
		t.Fatalf("limit-upload default shows %q", got)
	}
}
