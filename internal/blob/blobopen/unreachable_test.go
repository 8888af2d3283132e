package blobopen_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
)

// closedPort returns a loopback port with nothing listening: connections
// are refused at once.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestUnreachable: every backend's calls to a closed port end, after the
// retries, in an error wrapping blob.ErrUnavailable (what the CLI maps to
// its "storage unavailable" exit code). The generous deadline only guards
// against hanging; finishing before it is the check, not a timing.
func TestUnreachable(t *testing.T) {
	port := closedPort(t)
	e := env(map[string]string{
		"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b",
		"AZURE_STORAGE_KEY": "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
	})
	urls := []string{
		fmt.Sprintf("azblob://hvgone?endpoint=http://127.0.0.1:%d/devstoreaccount1&account=devstoreaccount1", port),
		fmt.Sprintf("s3://hvgone?endpoint=127.0.0.1:%d&insecure=true", port),
	}
	lim := blob.Limits{Retries: 3, RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, MaxConcurrency: 2}
	for _, raw := range urls {
		b, err := blobopen.OpenEnv(context.Background(), raw, lim, e)
		if err != nil {
			t.Fatalf("Open(%q): %v", raw, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		calls := map[string]error{
			"put":  b.Put(ctx, "config", []byte("x")),
			"stat": func() error { _, err := b.Stat(ctx, "config"); return err }(),
			"get":  func() error { _, err := b.Get(ctx, "config", 0, -1); return err }(),
			"list": b.List(ctx, "", func(blob.Info) error { return nil }),
		}
		for op, err := range calls {
			if !errors.Is(err, blob.ErrUnavailable) || ctx.Err() != nil {
				t.Errorf("%s %s: err = %v (ctx: %v), want ErrUnavailable", raw, op, err, ctx.Err())
			}
		}
		cancel()
	}
}
