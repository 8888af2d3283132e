// Package storage benchmarks the blob backends against the real services
// on loopback. Not run by .ci/test (no -bench); run with:
//
//	go test -run '^$' -bench . -benchtime 20x ./bench/storage/
package storage

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/azblob"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/blob/s3blob"
	"github.com/haven-dr/haven/internal/testenv"
)

func backends(b *testing.B) map[string]blob.Backend {
	fb, err := fileblob.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ep, acct, key := testenv.Azurite(b)
	ab, err := azblob.New(azblob.Config{Container: "hvbench", Endpoint: ep, Account: acct, Key: key})
	if err != nil {
		b.Fatal(err)
	}
	s3ep, ak, sk := testenv.S3Server(b)
	sb, err := s3blob.New(s3blob.Config{Bucket: "hvbench", Endpoint: s3ep, Insecure: true, PathStyle: true, AccessKey: ak, SecretKey: sk})
	if err != nil {
		b.Fatal(err)
	}
	return map[string]blob.Backend{"file": fb, "azurite": ab, "versitygw": sb}
}

// BenchmarkBackends measures Put and Get of pack-sized (4 MiB) and
// index-sized (64 KiB) objects, 4 calls in flight as the vault would.
func BenchmarkBackends(b *testing.B) {
	all := backends(b)
	for _, name := range []string{"file", "azurite", "versitygw"} {
		be := blob.Wrap(all[name], blob.Limits{MaxConcurrency: 4})
		for _, size := range []int{64 << 10, 4 << 20} {
			data := make([]byte, size)
			rand.Read(data)
			b.Run(fmt.Sprintf("%s/put-%dKiB", name, size>>10), func(b *testing.B) { benchPut(b, be, data) })
			b.Run(fmt.Sprintf("%s/get-%dKiB", name, size>>10), func(b *testing.B) { benchGet(b, be, data) })
		}
	}
}

func benchPut(b *testing.B, be blob.Backend, data []byte) {
	b.SetBytes(int64(len(data)))
	b.SetParallelism(2) // 2 cores x 2 = 4 goroutines
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := be.Put(context.Background(), fmt.Sprintf("data/%d", n.Add(1)%64), data); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchGet(b *testing.B, be blob.Backend, data []byte) {
	name := fmt.Sprintf("get/%d", len(data))
	if err := be.Put(context.Background(), name, data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.SetParallelism(2)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := be.Get(context.Background(), name, 0, -1); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBandwidthLimit reports the achieved upload rate with a 8 MiB/s
// limit, 64 KiB puts to the file backend (the target is 8 MiB/s).
func BenchmarkBandwidthLimit(b *testing.B) {
	fb, err := fileblob.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	const limit = 8 << 20
	be := blob.Wrap(fb, blob.Limits{UploadBytesPerSec: limit})
	data := make([]byte, 64<<10)
	total := 0
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for j := range 64 { // 4 MiB per iteration
			if err := be.Put(context.Background(), fmt.Sprintf("bw/%d", j), data); err != nil {
				b.Fatal(err)
			}
			total += len(data)
		}
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(total)/el/(1<<20), "MiB/s-achieved")
	b.ReportMetric(float64(limit)/(1<<20), "MiB/s-limit")
}

// BenchmarkList measures listing 5000 small objects (5 pages on Azure/S3).
func BenchmarkList(b *testing.B) {
	for name, be := range backends(b) {
		prefix := "list-" + strings.ToLower(name) + "/"
		wrapped := blob.Wrap(be, blob.Limits{MaxConcurrency: 8})
		fill(b, wrapped, prefix, 5000)
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				n := 0
				if err := be.List(context.Background(), prefix, func(blob.Info) error { n++; return nil }); err != nil || n != 5000 {
					b.Fatalf("List: %d objects, %v", n, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/5000, "µs/object")
		})
	}
}

func fill(b *testing.B, be blob.Backend, prefix string, n int) {
	sem := make(chan struct{}, 8)
	errs := make(chan error, n)
	for i := range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			errs <- be.Put(context.Background(), fmt.Sprintf("%s%02x/%d", prefix, i%256, i), []byte("x"))
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
}
