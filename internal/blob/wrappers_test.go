package blob_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

func sortStrings(s []string) { slices.Sort(s) }

var errDown = blob.Unavailable(errors.New("connection refused"))

func fastRetry(b blob.Backend, n int) blob.Backend {
	return blob.NewRetry(b, n, time.Millisecond, 4*time.Millisecond)
}

func TestRetryRecovers(t *testing.T) {
	f := newFake()
	f.fail("put", errDown, errDown)
	if err := fastRetry(f, 3).Put(context.Background(), "x", []byte("1")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if f.calls["put"] != 3 {
		t.Fatalf("put called %d times, want 3", f.calls["put"])
	}
}

func TestRetryGivesUp(t *testing.T) {
	f := newFake()
	f.fail("stat", errDown, errDown, errDown, errDown)
	_, err := fastRetry(f, 2).Stat(context.Background(), "x")
	if !errors.Is(err, blob.ErrUnavailable) || f.calls["stat"] != 3 {
		t.Fatalf("Stat = %v after %d calls, want ErrUnavailable after 3", err, f.calls["stat"])
	}
}

func TestRetryPermanentErrors(t *testing.T) {
	f := newFake()
	perm := errors.New("HTTP 403")
	f.fail("delete", perm)
	if err := fastRetry(f, 5).Delete(context.Background(), "x"); !errors.Is(err, perm) || f.calls["delete"] != 1 {
		t.Fatalf("Delete = %v after %d calls, want the 403 after 1", err, f.calls["delete"])
	}
	_, err := fastRetry(f, 5).Get(context.Background(), "missing", 0, -1)
	if !errors.Is(err, blob.ErrNotFound) || f.calls["get"] != 1 {
		t.Fatalf("Get = %v after %d calls, want ErrNotFound after 1", err, f.calls["get"])
	}
}

func TestRetryStopsOnCancel(t *testing.T) {
	f := newFake()
	for range 100 {
		f.fail("put", errDown)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := blob.NewRetry(f, 100, time.Hour, time.Hour) // would sleep for an hour
	done := make(chan error)
	go func() { done <- r.Put(ctx, "x", nil) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Put = %v, want context.Canceled", err)
	}
}

func TestRetryListNoDuplicates(t *testing.T) {
	f := newFake()
	for i := range 5 {
		f.objs[fmt.Sprint(i)] = nil
	}
	f.listCut = 2
	f.fail("list", errDown, errDown)
	var got []string
	err := fastRetry(f, 3).List(context.Background(), "", func(fi blob.Info) error {
		got = append(got, fi.Name)
		return nil
	})
	if err != nil || !slices.Equal(got, []string{"0", "1", "2", "3", "4"}) {
		t.Fatalf("List = %v, %v; want each name once", got, err)
	}
}

func TestRetryListCallbackErrorNotRetried(t *testing.T) {
	f := newFake()
	f.objs["a"] = nil
	calls := 0
	err := fastRetry(f, 3).List(context.Background(), "", func(blob.Info) error {
		calls++
		return errDown // e.g. fn itself talks to storage; its error is fn's
	})
	if !errors.Is(err, blob.ErrUnavailable) || calls != 1 || f.calls["list"] != 1 {
		t.Fatalf("List = %v, fn called %d, list called %d; want fn's error once", err, calls, f.calls["list"])
	}
}

func TestSemaphoreLimitsInFlight(t *testing.T) {
	f := newFake()
	f.gate = make(chan struct{})
	s := blob.NewSemaphore(f, 3)
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Put(context.Background(), fmt.Sprint(i), nil); err != nil {
				t.Error(err)
			}
		}()
	}
	for range 12 {
		f.gate <- struct{}{} // let one Put finish; only admitted ones can receive
	}
	wg.Wait()
	if m := f.maxSeen.Load(); m > 3 {
		t.Fatalf("%d calls in flight, limit 3", m)
	}
	if len(f.objs) != 12 {
		t.Fatalf("%d objects stored, want 12", len(f.objs))
	}
}

func TestSemaphoreCancelWhileWaiting(t *testing.T) {
	f := newFake()
	f.gate = make(chan struct{})
	s := blob.NewSemaphore(f, 1)
	go s.Put(context.Background(), "holder", nil)
	for f.inflight.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Stat(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stat while the only slot is held = %v, want context.Canceled", err)
	}
	f.gate <- struct{}{}
}

// TestSemaphoreListCallsBack: a listing whose callback uses the same
// backend must not deadlock, even with a single slot.
func TestSemaphoreListCallsBack(t *testing.T) {
	f := newFake()
	f.objs["a"], f.objs["b"] = []byte("1"), []byte("2")
	s := blob.NewSemaphore(f, 1)
	ctx := context.Background()
	err := s.List(ctx, "", func(fi blob.Info) error {
		_, err := s.Get(ctx, fi.Name, 0, -1)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
