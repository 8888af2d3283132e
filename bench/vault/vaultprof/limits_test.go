package vaultprof

import (
	"bytes"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sys/unix"
)

func threadCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sample is up to 64 MiB of the image's non-zero 16 KiB chunks (the
// vault's default chunk size), read from its start: what snapshot and
// restore push through their primitives.
func sample(b *testing.B) [][]byte {
	f, err := os.Open(image(b))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const cs, want = 16 << 10, 64 << 20
	zero := make([]byte, cs)
	var chunks [][]byte
	buf := make([]byte, 1<<20)
	for off, total := int64(0), 0; total < want; off += int64(len(buf)) {
		n, _ := f.ReadAt(buf, off)
		if n == 0 {
			break
		}
		for i := 0; i+cs <= n; i += cs {
			if c := buf[i : i+cs]; !bytes.Equal(c, zero) {
				chunks = append(chunks, bytes.Clone(c))
				total += cs
			}
		}
	}
	return chunks
}

// BenchmarkPrimitives measures one core's speed at each step the vault
// runs per chunk, on the benchmark image's own data, so PROFILE.md can
// state the machine's limit: MB of plaintext per CPU second through keyed
// BLAKE3, zstd (the vault's options) both ways, and XChaCha20-Poly1305 both
// ways, with the compressed size as out/in.
func BenchmarkPrimitives(b *testing.B) {
	chunks := sample(b)
	var total int64
	for _, c := range chunks {
		total += int64(len(c))
	}
	key := make([]byte, 32)
	// The vault's encoder options (internal/vault/vault.go).
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<17), zstd.WithNoEntropyCompression(true))
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	frames := make([][]byte, len(chunks))
	for i, c := range chunks {
		frames[i] = enc.EncodeAll(c, nil)
	}
	aead, _ := chacha20poly1305.NewX(key)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	sealed := make([][]byte, len(chunks))
	for i, c := range chunks {
		sealed[i] = aead.Seal(nil, nonce, c, nil)
	}
	run := func(name string, fn func(i int, scratch []byte) []byte) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(total)
			scratch := make([]byte, 0, 64<<10)
			// On a shared machine wall time measures the other tenants;
			// the thread's own CPU time is the core's speed.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			var out int64
			for b.Loop() {
				out = 0
				for i := range chunks {
					scratch = fn(i, scratch[:0])
					out += int64(len(scratch))
				}
			}
			b.ReportMetric(float64(total*int64(b.N))/1e6/(threadCPU()-cpu0).Seconds(), "MB/cpu-s")
			b.ReportMetric(float64(out)/float64(total), "out/in")
		})
	}
	h, _ := blake3.NewKeyed(key)
	run("blake3", func(i int, s []byte) []byte { h.Reset(); h.Write(chunks[i]); return h.Sum(s) })
	run("zstd-compress", func(i int, s []byte) []byte { return enc.EncodeAll(chunks[i], s) })
	// With Huffman-coded literals, for comparison: what the vault gave up.
	full, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<17))
	run("zstd-compress-entropy", func(i int, s []byte) []byte { return full.EncodeAll(chunks[i], s) })
	run("zstd-decompress", func(i int, s []byte) []byte { s, _ = dec.DecodeAll(frames[i], s); return s })
	run("seal", func(i int, s []byte) []byte { return aead.Seal(s, nonce, chunks[i], nil) })
	run("open", func(i int, s []byte) []byte { s, _ = aead.Open(s, nonce, sealed[i], nil); return s })
}
