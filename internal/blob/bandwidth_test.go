package blob_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// TestBandwidthPassesData checks that limited calls still move the right
// bytes, including uploads larger than the token bucket's burst.
func TestBandwidthPassesData(t *testing.T) {
	f := newFake()
	b := blob.NewBandwidth(f, 100<<20, 100<<20)
	data := bytes.Repeat([]byte("x"), 11<<20) // > burst of 10 MiB
	ctx := context.Background()
	if err := b.Put(ctx, "x", data); err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, "x", 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %d bytes, %v", len(got), err)
	}
}

// TestBandwidthRefusesOverBudget: 10 MiB at 1 MiB/s needs ~9 s beyond the
// burst, so with a 1 s deadline the limiter refuses at once and the upload
// never reaches the backend. This checks the limit is applied without
// timing anything.
func TestBandwidthRefusesOverBudget(t *testing.T) {
	f := newFake()
	b := blob.NewBandwidth(f, 1<<20, 0)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := b.Put(ctx, "x", make([]byte, 10<<20)); err == nil {
		t.Fatal("Put over the rate budget succeeded")
	}
	if f.calls["put"] != 0 {
		t.Fatalf("backend called %d times; the limiter should refuse first", f.calls["put"])
	}
	// Downloads are unlimited here.
	f.objs["y"] = make([]byte, 10<<20)
	if _, err := b.Get(ctx, "y", 0, -1); err != nil {
		t.Fatalf("unlimited Get: %v", err)
	}
}

func TestWrapStack(t *testing.T) {
	f := newFake()
	f.fail("put", errDown)
	b := blob.Wrap(f, blob.Limits{Retries: 2, RetryBase: time.Millisecond, MaxConcurrency: 1, UploadBytesPerSec: 1 << 30})
	if err := b.Put(context.Background(), "x", []byte("data")); err != nil {
		t.Fatalf("Put through the stack: %v", err)
	}
	if bare := blob.Wrap(f, blob.Limits{}); bare != blob.Backend(f) {
		t.Fatalf("zero Limits should add no wrappers, got %T", bare)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"config", "data/3f/3fa9", "keys/a.b", "a-b_c"} {
		if err := blob.CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "/a", "a/", "a//b", "../a", "a/./b", `a\b`} {
		if err := blob.CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
}
