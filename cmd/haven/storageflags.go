package main

import (
	"fmt"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/haven-dr/haven/internal/blob"
)

// addStorageFlags registers the storage limits on fs, with lim's current
// values as defaults (start from blob.DefaultLimits()).
func addStorageFlags(fs *pflag.FlagSet, lim *blob.Limits) {
	fs.Var(&byteRate{&lim.UploadBytesPerSec}, "limit-upload",
		`upload bandwidth limit per second, e.g. "10MiB" or "500KB" (0 = unlimited)`)
	fs.Var(&byteRate{&lim.DownloadBytesPerSec}, "limit-download",
		`download bandwidth limit per second, e.g. "10MiB" (0 = unlimited)`)
	fs.IntVar(&lim.MaxConcurrency, "max-concurrency", lim.MaxConcurrency,
		"storage calls in flight at once (0 = unlimited)")
	fs.IntVar(&lim.Retries, "retries", lim.Retries,
		"retries of a storage call that failed transiently (exponential backoff with jitter)")
}

// byteRate is a bytes-per-second flag that reads sizes like "10MiB",
// "1.5 GB" or "10MiB/s".
type byteRate struct{ p *int64 }

func (r *byteRate) String() string {
	if r.p == nil || *r.p <= 0 {
		return "0"
	}
	return humanize.IBytes(uint64(*r.p))
}

func (r *byteRate) Set(s string) error {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return fmt.Errorf("want a size per second such as 10MiB: %w", err)
	}
	if n > 1<<62 {
		return fmt.Errorf("%s per second is too large", s)
	}
	*r.p = int64(n)
	return nil
}

func (r *byteRate) Type() string { return "bytes/s" }
