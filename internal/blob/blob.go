// Package blob defines the object storage that a vault lives on. The vault
// needs very little from storage: whole-object writes that are atomic, ranged
// reads, listing by prefix and deletion. Every backend (local directory, Azure
// Blob, S3) implements Backend; retries, concurrency and bandwidth limits are
// wrappers around any Backend (see limits.go), so no backend re-implements them.
package blob

import (
	"context"
	"errors"
	"time"
)

// Error contract shared by every Backend. Callers test with errors.Is.
var (
	// ErrNotFound: the object does not exist. Never retried.
	ErrNotFound = errors.New("object not found")
	// ErrUnavailable: the storage service could not be reached or failed
	// transiently (connection refused, timeout, 5xx, throttling). Retried by
	// the retry wrapper; returned to the caller once retries are exhausted.
	ErrUnavailable = errors.New("storage unavailable")
)

// Info describes one stored object.
type Info struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// Backend is one storage service. Object names are slash-separated relative
// paths such as "data/3f/3fa9...". All methods are safe for concurrent use.
type Backend interface {
	// Location is a printable URL of the store without secrets.
	Location() string
	// Put stores data under name, replacing any existing object. Readers
	// see either the old object, nothing, or the complete new data, never a
	// partial write (a killed writer must not leave a truncated object).
	Put(ctx context.Context, name string, data []byte) error
	// Get returns length bytes starting at offset; length < 0 means to the
	// end. A range beyond the end of the object returns what exists (it may
	// be short); callers check lengths.
	Get(ctx context.Context, name string, offset, length int64) ([]byte, error)
	// Stat returns the object's Info or ErrNotFound.
	Stat(ctx context.Context, name string) (Info, error)
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, name string) error
	// List calls fn for every object whose name starts with prefix, in no
	// particular order. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Close releases resources.
	Close() error
}
