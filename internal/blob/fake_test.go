package blob_test

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/haven-dr/haven/internal/blob"
)

// fake is an in-memory backend for the wrappers' unit tests. failures[op]
// errors are returned, one per call, before the call succeeds.
type fake struct {
	mu       sync.Mutex
	objs     map[string][]byte
	failures map[string][]error
	calls    map[string]int
	inflight atomic.Int32
	maxSeen  atomic.Int32
	gate     chan struct{} // if set, Put blocks until it can receive
	listCut  int           // if > 0, a failing List delivers this many first
}

func newFake() *fake {
	return &fake{objs: map[string][]byte{}, failures: map[string][]error{}, calls: map[string]int{}}
}

func (f *fake) fail(op string, errs ...error) { f.failures[op] = append(f.failures[op], errs...) }

// enter counts the call and returns the next scripted failure, if any.
func (f *fake) enter(op string) error {
	n := f.inflight.Add(1)
	for m := f.maxSeen.Load(); n > m && !f.maxSeen.CompareAndSwap(m, n); m = f.maxSeen.Load() {
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if errs := f.failures[op]; len(errs) > 0 {
		f.failures[op] = errs[1:]
		return errs[0]
	}
	return nil
}

func (f *fake) leave() { f.inflight.Add(-1) }

func (f *fake) Location() string { return "fake://" }
func (f *fake) Close() error     { return nil }

func (f *fake) Put(ctx context.Context, name string, data []byte) error {
	defer f.leave()
	if err := f.enter("put"); err != nil {
		return err
	}
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objs[name] = append([]byte(nil), data...)
	return nil
}

func (f *fake) Get(ctx context.Context, name string, off, n int64) ([]byte, error) {
	defer f.leave()
	if err := f.enter("get"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.objs[name]
	if !ok {
		return nil, blob.NotFound(name)
	}
	return d[min(off, int64(len(d))):], nil
}

func (f *fake) Stat(ctx context.Context, name string) (blob.Info, error) {
	defer f.leave()
	if err := f.enter("stat"); err != nil {
		return blob.Info{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.objs[name]
	if !ok {
		return blob.Info{}, blob.NotFound(name)
	}
	return blob.Info{Name: name, Size: int64(len(d))}, nil
}

func (f *fake) Delete(ctx context.Context, name string) error {
	defer f.leave()
	if err := f.enter("delete"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objs, name)
	return nil
}

// List delivers objects in sorted order; a scripted failure is returned
// after listCut objects were delivered, as a connection dropping mid-listing.
func (f *fake) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	defer f.leave()
	failure := f.enter("list")
	for i, name := range f.names() {
		if failure != nil && i == f.listCut {
			return failure
		}
		if err := fn(blob.Info{Name: name}); err != nil {
			return err
		}
	}
	return failure
}

func (f *fake) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.objs {
		names = append(names, n)
	}
	sortStrings(names)
	return names
}
