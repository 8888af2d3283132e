package blob

import "time"

// Limits configures the wrappers that every backend gets (see Wrap). The zero
// value means: no retries, no concurrency limit, no bandwidth limit.
// DefaultLimits returns what the CLI uses unless told otherwise.
type Limits struct {
	// UploadBytesPerSec and DownloadBytesPerSec cap the average transfer
	// rate of Put and Get; 0 means unlimited.
	UploadBytesPerSec   int64
	DownloadBytesPerSec int64
	// MaxConcurrency caps the calls in flight to the service; 0 means
	// unlimited.
	MaxConcurrency int
	// Retries is how many times a call failing with ErrUnavailable is
	// repeated after the first attempt; 0 means never.
	Retries int
	// RetryBase is the first backoff delay; each retry doubles it, up to
	// RetryMax. Zero values take the defaults below.
	RetryBase time.Duration
	RetryMax  time.Duration
}

// Defaults used by DefaultLimits and for zero RetryBase/RetryMax.
const (
	DefaultMaxConcurrency = 8
	DefaultRetries        = 5
	DefaultRetryBase      = 250 * time.Millisecond
	DefaultRetryMax       = 10 * time.Second
)

// DefaultLimits returns the limits the CLI starts from: a few retries that
// ride out a service restart of ~10 s, and a concurrency that keeps a 2-core
// machine busy without overwhelming a small self-hosted object store.
func DefaultLimits() Limits {
	return Limits{
		MaxConcurrency: DefaultMaxConcurrency,
		Retries:        DefaultRetries,
		RetryBase:      DefaultRetryBase,
		RetryMax:       DefaultRetryMax,
	}
}

// Wrap stacks the wrappers once, outermost first: retry, bandwidth, then
// the concurrency limit next to the service. Retry sits outside the
// semaphore so a call sleeping between attempts holds no slot; the
// bandwidth limit sits outside it too so waiting for tokens holds none.
func Wrap(b Backend, lim Limits) Backend {
	if lim.MaxConcurrency > 0 {
		b = NewSemaphore(b, lim.MaxConcurrency)
	}
	if lim.UploadBytesPerSec > 0 || lim.DownloadBytesPerSec > 0 {
		b = NewBandwidth(b, lim.UploadBytesPerSec, lim.DownloadBytesPerSec)
	}
	if lim.Retries > 0 {
		b = NewRetry(b, lim.Retries, lim.RetryBase, lim.RetryMax)
	}
	return b
}
