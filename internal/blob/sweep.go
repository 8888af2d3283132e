package blob

import (
	"context"
	"time"
)

// Sweeper is implemented by backends that can leave debris of writes
// killed half-way (the local directory's temporary files). Prune calls it so
// a vault does not slowly fill with them.
type Sweeper interface {
	// SweepPartial removes debris older than age and reports what it removed.
	SweepPartial(ctx context.Context, age time.Duration) (files int, bytes int64, err error)
}

// Unwrapper is implemented by wrappers to expose the backend they wrap.
type Unwrapper interface {
	Unwrap() Backend
}

// SweepPartial finds a Sweeper in b's wrapper stack and runs it; backends
// without debris (object stores commit uploads atomically) do nothing.
func SweepPartial(ctx context.Context, b Backend, age time.Duration) (int, int64, error) {
	for b != nil {
		if s, ok := b.(Sweeper); ok {
			return s.SweepPartial(ctx, age)
		}
		u, ok := b.(Unwrapper)
		if !ok {
			break
		}
		b = u.Unwrap()
	}
	return 0, 0, nil
}

// Unwrap returns the wrapped backend.
func (r *Retry) Unwrap() Backend { return r.Backend }

// Unwrap returns the wrapped backend.
func (s *Semaphore) Unwrap() Backend { return s.Backend }

// Unwrap returns the wrapped backend.
func (b *Bandwidth) Unwrap() Backend { return b.Backend }
