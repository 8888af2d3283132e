package blob_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// retainer is the fake with locks of a fixed length.
type retainer struct {
	*fake
	d time.Duration
}

func (r retainer) Retention() time.Duration { return r.d }

func (r retainer) Retain(context.Context, string, time.Time) error { return nil }

// TestAsRetainer: the Retainer is found under every wrapper Wrap stacks,
// and a backend without locks (or with locks switched off) is not one.
func TestAsRetainer(t *testing.T) {
	all := blob.Limits{Retries: 1, MaxConcurrency: 2, UploadBytesPerSec: 1 << 20}
	if r, ok := blob.AsRetainer(blob.Wrap(retainer{newFake(), time.Hour}, all)); !ok || r.Retention() != time.Hour {
		t.Errorf("wrapped retainer: %v %v", r, ok)
	}
	if _, ok := blob.AsRetainer(blob.Wrap(retainer{newFake(), 0}, all)); ok {
		t.Error("a retainer with no retention counts")
	}
	if _, ok := blob.AsRetainer(blob.Wrap(newFake(), all)); ok {
		t.Error("a plain backend counts as a retainer")
	}
}

// TestRetainedIsPermanent: ErrRetained is not retried (the lock will not
// lift within a backoff) and keeps its cause.
func TestRetainedIsPermanent(t *testing.T) {
	f := newFake()
	cause := errors.New("HTTP 403 AccessDenied")
	f.failures["delete"] = []error{blob.Retained("data/00/p", cause), blob.Retained("data/00/p", cause)}
	err := blob.NewRetry(f, 3, time.Millisecond, time.Millisecond).Delete(context.Background(), "data/00/p")
	if !errors.Is(err, blob.ErrRetained) || !errors.Is(err, cause) || f.calls["delete"] != 1 {
		t.Errorf("retry of a retained delete: %v after %d calls, want ErrRetained after 1", err, f.calls["delete"])
	}
}
