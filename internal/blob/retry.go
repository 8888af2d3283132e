package blob

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Retry repeats calls that fail with ErrUnavailable, with exponential
// backoff and jitter. Other errors (ErrNotFound, permanent ones, context
// cancellation) return at once.
type Retry struct {
	Backend
	retries   int
	base, max time.Duration
}

// NewRetry wraps b; retries is the number of repeats after the first
// attempt. Zero base/max take DefaultRetryBase/DefaultRetryMax.
func NewRetry(b Backend, retries int, base, max time.Duration) *Retry {
	if base <= 0 {
		base = DefaultRetryBase
	}
	if max <= 0 {
		max = DefaultRetryMax
	}
	return &Retry{Backend: b, retries: retries, base: base, max: max}
}

// backoff returns the delay before retry number n (0-based): half of the
// exponential delay fixed, half random ("equal jitter"), so many clients
// failing together spread out but none retries immediately.
func (r *Retry) backoff(n int) time.Duration {
	d := r.base << min(n, 30)
	if d <= 0 || d > r.max {
		d = r.max
	}
	return d/2 + rand.N(d/2+1)
}

// do runs op until it succeeds, fails permanently, retries run out or ctx
// ends. The last error is returned, so it still wraps ErrUnavailable.
func (r *Retry) do(ctx context.Context, what, name string, op func() error) error {
	err := op()
	for n := 0; n < r.retries && errors.Is(err, ErrUnavailable); n++ {
		d := r.backoff(n)
		slog.Warn("storage call failed, retrying", "op", what, "name", name,
			"attempt", n+1, "delay", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		err = op()
	}
	return err
}

// Put retries the whole upload; data is still in memory.
func (r *Retry) Put(ctx context.Context, name string, data []byte) error {
	return r.do(ctx, "put", name, func() error { return r.Backend.Put(ctx, name, data) })
}

// Get retries the ranged read.
func (r *Retry) Get(ctx context.Context, name string, off, n int64) (data []byte, err error) {
	err = r.do(ctx, "get", name, func() error {
		data, err = r.Backend.Get(ctx, name, off, n)
		return err
	})
	return data, err
}

// Stat retries the lookup.
func (r *Retry) Stat(ctx context.Context, name string) (fi Info, err error) {
	err = r.do(ctx, "stat", name, func() error {
		fi, err = r.Backend.Stat(ctx, name)
		return err
	})
	return fi, err
}

// Delete retries; deleting is idempotent, so a repeat is harmless.
func (r *Retry) Delete(ctx context.Context, name string) error {
	return r.do(ctx, "delete", name, func() error { return r.Backend.Delete(ctx, name) })
}

var errStopped = errors.New("listing stopped by callback")

// List restarts a failed listing but never calls fn twice for one name, and
// never retries an error that fn itself returned.
func (r *Retry) List(ctx context.Context, prefix string, fn func(Info) error) error {
	seen := make(map[string]struct{})
	var fnErr error
	err := r.do(ctx, "list", prefix, func() error {
		err := r.Backend.List(ctx, prefix, func(fi Info) error {
			if _, ok := seen[fi.Name]; ok {
				return nil
			}
			seen[fi.Name] = struct{}{}
			fnErr = fn(fi)
			return fnErr
		})
		if fnErr != nil {
			return errStopped // fn's error may wrap ErrUnavailable; never retry it
		}
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}
