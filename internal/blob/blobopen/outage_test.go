package blobopen_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/testenv"
)

// TestOutageRecovered: during a storage outage the bare backend reports
// ErrUnavailable, and a Put through Open's retry stack that starts during
// the outage succeeds once the service is back.
func TestOutageRecovered(t *testing.T) {
	endpoint, access, secret := testenv.S3Server(t)
	proxy := testenv.NewOutageProxy(t, endpoint)
	raw := fmt.Sprintf("s3://hvoutage?endpoint=%s&insecure=true", proxy.Addr)
	e := env(map[string]string{"AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret})
	lim := blob.Limits{Retries: 20, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}
	ctx := context.Background()
	b, err := blobopen.OpenEnv(ctx, raw, lim, e)
	if err != nil {
		t.Fatal(err)
	}
	bare, _ := blobopen.OpenEnv(ctx, raw, blob.Limits{}, e)
	if err := b.Put(ctx, "before", []byte("1")); err != nil {
		t.Fatalf("Put before the outage: %v", err)
	}

	proxy.Down()
	if _, err := bare.Stat(ctx, "before"); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Stat during outage = %v, want ErrUnavailable", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Put(ctx, "during", []byte("2")) }()
	time.Sleep(300 * time.Millisecond) // let some attempts fail; the check below does not depend on it
	proxy.Up(t)
	if err := <-done; err != nil {
		t.Fatalf("Put across the outage: %v", err)
	}
	if got, err := b.Get(ctx, "during", 0, -1); err != nil || string(got) != "2" {
		t.Fatalf("Get after the outage = %q, %v", got, err)
	}
}
