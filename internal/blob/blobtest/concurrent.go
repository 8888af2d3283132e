package blobtest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"golang.org/x/sync/errgroup"
)

// manyObjects is above the 1000-entry page size of Azure and S3 listings,
// so the backends' pagination is exercised.
const manyObjects = 1100

func testListMany(t *testing.T, b blob.Backend) {
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(16)
	for i := range manyObjects {
		g.Go(func() error {
			return b.Put(ctx, fmt.Sprintf("index/%02x/%05d", i%256, i), []byte{byte(i)})
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("Put: %v", err)
	}
	put(t, b, "other", nil)
	s := sizes(t, b, "index/")
	if len(s) != manyObjects {
		t.Fatalf("List(index/) returned %d objects, want %d", len(s), manyObjects)
	}
	for i := range manyObjects {
		if n := fmt.Sprintf("index/%02x/%05d", i%256, i); s[n] != 1 {
			t.Fatalf("object %s missing or wrong size (%d)", n, s[n])
		}
	}
}

// testConcurrentPuts writes distinct and identical names from many
// goroutines; every object must end up whole, and a contended name must
// hold exactly one writer's data.
func testConcurrentPuts(t *testing.T, b blob.Backend) {
	const writers = 16
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			errs <- b.Put(ctx, fmt.Sprintf("c/own/%d", i), randBytes(uint64(100+i), 200_000))
			errs <- b.Put(ctx, "c/shared", randBytes(uint64(200+i), 300_000))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Put: %v", err)
		}
	}
	for i := range writers {
		wantGet(t, b, fmt.Sprintf("c/own/%d", i), 0, -1, randBytes(uint64(100+i), 200_000))
	}
	shared := get(t, b, "c/shared", 0, -1)
	for i := range writers {
		if bytes.Equal(shared, randBytes(uint64(200+i), 300_000)) {
			return
		}
	}
	t.Fatalf("c/shared (%d bytes) matches no writer's data", len(shared))
}
