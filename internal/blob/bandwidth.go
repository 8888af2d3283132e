package blob

import (
	"context"

	"golang.org/x/time/rate"
)

// Bandwidth caps the average bytes per second of Put (upload) and Get
// (download). The API moves whole byte slices, so the limit is enforced per
// call: an upload waits for its tokens before it is sent, a download waits
// for its tokens after it arrived. Over many calls the average rate holds;
// a single call is not shaped on the wire.
type Bandwidth struct {
	Backend
	up, down *rate.Limiter // nil: unlimited
}

// NewBandwidth wraps b; a rate <= 0 leaves that direction unlimited.
func NewBandwidth(b Backend, upBytesPerSec, downBytesPerSec int64) *Bandwidth {
	return &Bandwidth{Backend: b, up: limiter(upBytesPerSec), down: limiter(downBytesPerSec)}
}

// limiter allows a burst of a tenth of a second of traffic (at least 64 KiB),
// so small objects do not each wait for the token bucket to refill.
func limiter(bps int64) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bps), int(max(bps/10, 64<<10)))
}

// wait takes n tokens from l, in pieces no larger than its burst (WaitN
// refuses more than the burst at once).
func wait(ctx context.Context, l *rate.Limiter, n int) error {
	if l == nil {
		return nil
	}
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Put waits until the upload fits the rate, then sends it.
func (b *Bandwidth) Put(ctx context.Context, name string, data []byte) error {
	if err := wait(ctx, b.up, len(data)); err != nil {
		return err
	}
	return b.Backend.Put(ctx, name, data)
}

// Get reads, then waits until the bytes received fit the rate.
func (b *Bandwidth) Get(ctx context.Context, name string, off, n int64) ([]byte, error) {
	data, err := b.Backend.Get(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	if err := wait(ctx, b.down, len(data)); err != nil {
		return nil, err
	}
	return data, nil
}
