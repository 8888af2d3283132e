package hostapi

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/haven-dr/haven/internal/fence"
)

// flights share a long call (a disk restore) between the caller that
// started it and the same call retried after its connection dropped: the
// retry waits for the running one instead of writing the same disk a
// second time beside it. A call whose callers all left goes on for the
// grace period, so a retry still finds it, and is then cancelled; the
// next call resumes what it wrote (the host's calls are reconciles).
type flights struct {
	grace time.Duration
	mu    sync.Mutex
	m     map[string]*flight
}

type flight struct {
	done    chan struct{}
	val     any
	err     error
	waiters int
	cancel  context.CancelFunc
	timer   *time.Timer
}

// do runs fn once per identical request (kind, req and the caller's
// epoch) at a time. fn's context carries the epoch but not the caller's
// cancellation: it ends when the last caller has been gone for grace.
func (f *flights) do(ctx context.Context, kind string, req any, fn func(context.Context) (any, error)) (any, error) {
	b, _ := json.Marshal(req)
	e, _ := fence.From(ctx)
	key := kind + "\x00" + string(b) + "\x00" + strconv.FormatInt(e, 10)
	f.mu.Lock()
	if f.m == nil {
		f.m = map[string]*flight{}
	}
	fl := f.m[key]
	if fl == nil {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		fl = &flight{done: make(chan struct{}), cancel: cancel}
		f.m[key] = fl
		go func() {
			fl.val, fl.err = fn(fctx)
			cancel()
			f.mu.Lock()
			delete(f.m, key)
			f.mu.Unlock()
			close(fl.done)
		}()
	}
	fl.waiters++
	if fl.timer != nil {
		fl.timer.Stop()
		fl.timer = nil
	}
	f.mu.Unlock()
	select {
	case <-fl.done:
		return fl.val, fl.err
	case <-ctx.Done():
		f.mu.Lock()
		fl.waiters--
		if fl.waiters == 0 {
			fl.timer = time.AfterFunc(f.grace, fl.cancel)
		}
		f.mu.Unlock()
		return nil, ctx.Err()
	}
}
