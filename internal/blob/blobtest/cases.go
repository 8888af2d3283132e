package blobtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

func testNotFound(t *testing.T, b blob.Backend) {
	ctx := context.Background()
	_, err := b.Get(ctx, "missing/object", 0, -1)
	wantNotFound(t, "Get", err)
	_, err = b.Get(ctx, "missing/object", 10, 5)
	wantNotFound(t, "ranged Get", err)
	_, err = b.Stat(ctx, "missing/object")
	wantNotFound(t, "Stat", err)
	if err := b.Delete(ctx, "missing/object"); err != nil {
		t.Fatalf("Delete of missing object: %v", err)
	}
	if names := list(t, b, ""); len(names) != 0 {
		t.Fatalf("empty store lists %v", names)
	}
}

func testRoundTrip(t *testing.T, b blob.Backend) {
	data := randBytes(1, 100_000)
	before := time.Now().Add(-time.Hour) // clocks of services may differ a little
	put(t, b, "config", data)
	wantGet(t, b, "config", 0, -1, data)
	fi, err := b.Stat(context.Background(), "config")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if fi.Name != "config" || fi.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, want name config size %d", fi, len(data))
	}
	if fi.ModTime.Before(before) || fi.ModTime.After(time.Now().Add(time.Hour)) {
		t.Fatalf("Stat ModTime = %v, want about now", fi.ModTime)
	}
}

func testRanges(t *testing.T, b blob.Backend) {
	data := randBytes(2, 10_000)
	put(t, b, "r", data)
	cases := []struct{ off, n int64 }{
		{0, 1}, {0, 10_000}, {1, 9_999}, {5_000, 100}, {9_999, 1},
		{9_990, 100}, // past the end: short read
		{0, 20_000},  // longer than the object
		{123, -1},    // to the end
		{10_000, 10}, // starts at the end: empty
		{10_000, -1},
		{20_000, 5}, // starts past the end: empty
		{0, 0},
	}
	for _, c := range cases {
		lo := min(c.off, int64(len(data)))
		hi := int64(len(data))
		if c.n >= 0 {
			hi = min(lo+c.n, hi)
		}
		wantGet(t, b, "r", c.off, c.n, data[lo:hi])
	}
}

func testOverwrite(t *testing.T, b blob.Backend) {
	put(t, b, "o", randBytes(3, 5000))
	second := randBytes(4, 300)
	put(t, b, "o", second)
	wantGet(t, b, "o", 0, -1, second)
	if fi, err := b.Stat(context.Background(), "o"); err != nil || fi.Size != 300 {
		t.Fatalf("Stat after overwrite = %+v, %v; want size 300", fi, err)
	}
	if names := list(t, b, ""); !slices.Equal(names, []string{"o"}) {
		t.Fatalf("List after overwrite = %v", names)
	}
}

func testEmpty(t *testing.T, b blob.Backend) {
	put(t, b, "e/empty", nil)
	if got := get(t, b, "e/empty", 0, -1); len(got) != 0 {
		t.Fatalf("empty object reads %d bytes", len(got))
	}
	if got := get(t, b, "e/empty", 0, 10); len(got) != 0 {
		t.Fatalf("ranged read of empty object returns %d bytes", len(got))
	}
	fi, err := b.Stat(context.Background(), "e/empty")
	if err != nil || fi.Size != 0 {
		t.Fatalf("Stat(empty) = %+v, %v", fi, err)
	}
	if s := sizes(t, b, "e/"); len(s) != 1 || s["e/empty"] != 0 {
		t.Fatalf("List(e/) = %v", s)
	}
}

func testSubdirectories(t *testing.T, b blob.Backend) {
	names := []string{"a/b/c/d", "a/b/x", "a/y", "z"}
	for i, n := range names {
		put(t, b, n, randBytes(uint64(10+i), 10+i))
	}
	for i, n := range names {
		wantGet(t, b, n, 0, -1, randBytes(uint64(10+i), 10+i))
	}
	if got := list(t, b, "a/b/"); !slices.Equal(got, []string{"a/b/c/d", "a/b/x"}) {
		t.Fatalf("List(a/b/) = %v", got)
	}
	_, err := b.Stat(context.Background(), "a/b")
	wantNotFound(t, "Stat of a directory-like prefix", err)
	_, err = b.Get(context.Background(), "a/b", 0, -1)
	wantNotFound(t, "Get of a directory-like prefix", err)
	_, err = b.Get(context.Background(), "z/below-an-object", 0, -1)
	wantNotFound(t, "Get below an object", err)
}

func testListPrefix(t *testing.T, b blob.Backend) {
	all := []string{"data/3f/3fa9", "data/3f/3f00", "data/30/3001", "data/4a/4a00",
		"index/1", "index10/1", "indexx", "points/m1/p1"}
	for _, n := range all {
		put(t, b, n, []byte(n))
	}
	check := func(prefix string, want ...string) {
		t.Helper()
		slices.Sort(want)
		if got := list(t, b, prefix); !slices.Equal(got, want) {
			t.Fatalf("List(%q) = %v, want %v", prefix, got, want)
		}
	}
	check("data/3f/", "data/3f/3fa9", "data/3f/3f00")
	check("data/3", "data/3f/3fa9", "data/3f/3f00", "data/30/3001")
	check("data/3f/3fa", "data/3f/3fa9")
	check("index/", "index/1")
	check("index", "index/1", "index10/1", "indexx")
	check("nothing/")
	check("", all...)
	if s := sizes(t, b, "points/"); s["points/m1/p1"] != int64(len("points/m1/p1")) {
		t.Fatalf("List sizes = %v", s)
	}
}

func testListStop(t *testing.T, b blob.Backend) {
	for i := range 5 {
		put(t, b, "s/"+string(rune('a'+i)), []byte{byte(i)})
	}
	stop := errors.New("stop")
	calls := 0
	err := b.List(context.Background(), "s/", func(blob.Info) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with failing fn: err %v after %d calls, want stop after 1", err, calls)
	}
}

func testDelete(t *testing.T, b blob.Backend) {
	ctx := context.Background()
	put(t, b, "d/x", []byte("x"))
	put(t, b, "d/y", []byte("y"))
	for range 2 { // deleting twice is fine
		if err := b.Delete(ctx, "d/x"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	_, err := b.Stat(ctx, "d/x")
	wantNotFound(t, "Stat after Delete", err)
	_, err = b.Get(ctx, "d/x", 0, -1)
	wantNotFound(t, "Get after Delete", err)
	if got := list(t, b, "d/"); !slices.Equal(got, []string{"d/y"}) {
		t.Fatalf("List after Delete = %v", got)
	}
}

func testLarge(t *testing.T, b blob.Backend) {
	data := randBytes(5, 20<<20+12345)
	put(t, b, "data/big", data)
	wantGet(t, b, "data/big", 0, -1, data)
	end := int64(len(data))
	wantGet(t, b, "data/big", end-1000, 5000, data[end-1000:])
	wantGet(t, b, "data/big", 8<<20-3, 7, data[8<<20-3:8<<20+4])
}

func testInvalidNames(t *testing.T, b blob.Backend) {
	for _, n := range []string{"", "/abs", "../up", "a/../../b", "a//b", "a/", "."} {
		if err := b.Put(context.Background(), n, []byte("x")); !errors.Is(err, blob.ErrInvalidName) {
			t.Errorf("Put(%q) = %v, want ErrInvalidName", n, err)
		}
	}
}

func testCancelled(t *testing.T, b blob.Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Put(ctx, "c", []byte("x")); err == nil {
		t.Fatalf("Put with cancelled context succeeded")
	} else if errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Put with cancelled context = %v; must not look retryable", err)
	}
}

func testLocation(t *testing.T, b blob.Backend) {
	if b.Location() == "" {
		t.Fatalf("empty Location")
	}
}
