package blob

import (
	"errors"
	"fmt"
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
