// Package blobopen turns a vault URL into a ready blob.Backend: it picks
// the backend by scheme and stacks the retry, bandwidth and concurrency
// wrappers once, so callers never assemble them by hand.
//
//	file:///abs/path  or  /abs/path  or  relative/path
//	azblob://CONTAINER[/prefix]?endpoint=URL&account=NAME
//	s3://BUCKET[/prefix]?endpoint=HOST:PORT&insecure=true&region=R&pathstyle=true
//	https://HOST:PORT[/prefix]?ca=/path/ca.crt   (haven vault serve)
//
// Secrets come from the environment (AZURE_STORAGE_KEY,
// AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING,
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
// HAVEN_VAULT_TOKEN, HAVEN_VAULT_TOKEN_FILE), never from
// the URL, so a URL can be printed and logged.
package blobopen

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/azblob"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/blob/httpblob"
	"github.com/haven-dr/haven/internal/blob/s3blob"
)

// ErrBadURL is returned for a URL that cannot be parsed or names an
// unknown scheme or lacks what its backend needs.
var ErrBadURL = errors.New("invalid storage URL")

// Open returns the backend for rawURL wrapped with lim (see blob.Wrap). It
// does no network I/O: an unreachable service shows up on the first call
// as an error wrapping blob.ErrUnavailable, after lim.Retries retries.
func Open(ctx context.Context, rawURL string, lim blob.Limits) (blob.Backend, error) {
	return OpenEnv(ctx, rawURL, lim, os.Getenv)
}

// OpenEnv is Open with an explicit environment lookup (for tests, and for
// callers that keep credentials elsewhere).
func OpenEnv(ctx context.Context, rawURL string, lim blob.Limits, getenv func(string) string) (blob.Backend, error) {
	b, err := open(rawURL, getenv)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadURL, redact(rawURL), err)
	}
	return blob.Wrap(b, lim), nil
}

func open(rawURL string, getenv func(string) string) (blob.Backend, error) {
	if rawURL == "" {
		return nil, errors.New("empty URL")
	}
	scheme, _, found := strings.Cut(rawURL, "://")
	if !found || strings.HasPrefix(rawURL, "file:") {
		return fileblob.FromURL(rawURL)
	}
	switch scheme {
	case "azblob":
		cfg, err := azblob.ParseURL(rawURL, getenv)
		if err != nil {
			return nil, err
		}
		return azblob.New(cfg)
	case "s3":
		cfg, err := s3blob.ParseURL(rawURL, getenv)
		if err != nil {
			return nil, err
		}
		return s3blob.New(cfg)
	case "https":
		cfg, err := httpblob.ParseURL(rawURL, getenv)
		if err != nil {
			return nil, err
		}
		return httpblob.New(cfg)
	default:
		return nil, fmt.Errorf("unknown scheme %q (want file, azblob, s3 or https)", scheme)
	}
}

// redact drops a user:password part, in case someone put one in the URL.
func redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}

// PrefixedEnv looks a variable up as prefix+name first, then as name, so
// a second vault's credentials (HAVEN_TO_AWS_ACCESS_KEY_ID) can sit beside
// the first's in one environment.
func PrefixedEnv(prefix string) func(string) string {
	return func(name string) string {
		if v := os.Getenv(prefix + name); v != "" {
			return v
		}
		return os.Getenv(name)
	}
}
