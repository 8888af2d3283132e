package blob

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrRetained: the service refused to delete or replace an object because
// a retention it enforces (S3 Object Lock, an Azure immutability policy)
// has not expired yet. It is permanent for now but not for ever: prune and
// other admin work treat it as "not yet" and try again on a later run; they
// never try to override the lock. Never retried by Retry.
var ErrRetained = errors.New("object retained by the storage service")

// Retained wraps ErrRetained with the object's name and the service's words.
func Retained(name string, cause error) error {
	return fmt.Errorf("%w: %s: %w", ErrRetained, name, cause)
}

// Retainer is implemented by backends whose service locks objects against
// deletion for a time (s3blob with lock= and retain= in its URL). It is
// how the vault learns the retention its storage enforces, and how it can
// keep data that is still in use locked after the lock it was written
// with runs out (a deduplicated pack outlives the point that wrote it).
type Retainer interface {
	// Retention is how long each Put locks an object; 0 means no locks.
	Retention() time.Duration
	// Retain makes name's current version undeletable until at least
	// until. It only ever extends: a later lock is left as it is.
	Retain(ctx context.Context, name string, until time.Time) error
}

// AsRetainer finds the Retainer under the wrappers Wrap stacks. ok is
// false when the storage cannot lock objects or was not asked to.
func AsRetainer(b Backend) (r Retainer, ok bool) {
	for {
		switch w := b.(type) {
		case *Retry:
			b = w.Backend
		case *Bandwidth:
			b = w.Backend
		case *Semaphore:
			b = w.Backend
		default:
			r, ok = b.(Retainer)
			return r, ok && r.Retention() > 0
		}
	}
}
