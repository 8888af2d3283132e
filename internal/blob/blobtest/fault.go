package blobtest

import (
	"context"
	"sync"

	"github.com/haven-dr/haven/internal/blob"
)

// Fault wraps a real backend and lets a test decide, call by call, whether
// storage misbehaves: fail the call, delay it, or hold it until the test
// lets it go. It is the one fault injector for tests of what callers do
// when storage is down, slow or flaky; the wrapped backend stays real.
type Fault struct {
	blob.Backend
	mu   sync.Mutex
	hook Hook
}

// Hook is called before each call with its operation ("put", "get",
// "stat", "delete", "list") and object name (the prefix for "list"). A
// non-nil error is returned instead of calling the backend; a hook may also
// block (to hold or slow a call) and should then honour ctx.
type Hook func(ctx context.Context, op, name string) error

// NewFault wraps b with no faults.
func NewFault(b blob.Backend) *Fault { return &Fault{Backend: b} }

// Set replaces the hook; nil lets every call through.
func (f *Fault) Set(h Hook) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

// FailWhen is a hook that fails matching calls with blob.ErrUnavailable,
// as an unreachable service does.
func FailWhen(match func(op, name string) bool) Hook {
	return func(_ context.Context, op, name string) error {
		if match(op, name) {
			return blob.Unavailable(errInjected)
		}
		return nil
	}
}

type injected struct{}

func (injected) Error() string { return "injected fault" }

var errInjected error = injected{}

func (f *Fault) before(ctx context.Context, op, name string) error {
	f.mu.Lock()
	h := f.hook
	f.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(ctx, op, name)
}

// Put stores data unless the hook fails the call.
func (f *Fault) Put(ctx context.Context, name string, data []byte) error {
	if err := f.before(ctx, "put", name); err != nil {
		return err
	}
	return f.Backend.Put(ctx, name, data)
}

// Get reads unless the hook fails the call.
func (f *Fault) Get(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if err := f.before(ctx, "get", name); err != nil {
		return nil, err
	}
	return f.Backend.Get(ctx, name, off, n)
}

// Stat looks up unless the hook fails the call.
func (f *Fault) Stat(ctx context.Context, name string) (blob.Info, error) {
	if err := f.before(ctx, "stat", name); err != nil {
		return blob.Info{}, err
	}
	return f.Backend.Stat(ctx, name)
}

// Delete removes unless the hook fails the call.
func (f *Fault) Delete(ctx context.Context, name string) error {
	if err := f.before(ctx, "delete", name); err != nil {
		return err
	}
	return f.Backend.Delete(ctx, name)
}

// List lists unless the hook fails the call.
func (f *Fault) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	if err := f.before(ctx, "list", prefix); err != nil {
		return err
	}
	return f.Backend.List(ctx, prefix, fn)
}

// Unwrap returns the wrapped backend (blob.SweepPartial looks through it).
func (f *Fault) Unwrap() blob.Backend { return f.Backend }
