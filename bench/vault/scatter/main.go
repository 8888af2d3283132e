// Command scatter overwrites a fraction of a disk image with random 4 KiB
// blocks at distinct, scattered, block-aligned offsets. The offsets and the
// data come from a fixed seed, so every run changes the same image the same
// way: the vault benchmark's "1 % of the disk changed" step.
//
//	scatter [-seed N] [-percent 1] IMAGE
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
)

const blockSize = 4096

func main() {
	seed := flag.Uint64("seed", 2, "random seed for offsets and data")
	percent := flag.Float64("percent", 1, "percentage of the image to overwrite")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: scatter [-seed N] [-percent P] IMAGE")
		os.Exit(2)
	}
	n, err := scatterFile(flag.Arg(0), *seed, *percent)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scatter:", err)
		os.Exit(1)
	}
	fmt.Printf("%d\n", n) // bytes written, for the caller's report
}

// scatterFile overwrites percent of the file at path and returns the bytes written.
func scatterFile(path string, seed uint64, percent float64) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewChaCha8(seedBytes(seed)))
	offsets := pickBlocks(rng, size/blockSize, int(float64(size)*percent/100/blockSize+0.5))
	buf := make([]byte, blockSize)
	for _, b := range offsets {
		fillRandom(rng, buf)
		if _, err := f.WriteAt(buf, b*blockSize); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return int64(len(offsets)) * blockSize, nil
}

// pickBlocks returns n distinct block numbers below total (n <= total).
func pickBlocks(rng *rand.Rand, total int64, n int) []int64 {
	chosen := make(map[int64]bool, n)
	out := make([]int64, 0, n)
	for len(out) < n && int64(len(out)) < total {
		b := rng.Int64N(total)
		if !chosen[b] {
			chosen[b] = true
			out = append(out, b)
		}
	}
	return out
}

func fillRandom(rng *rand.Rand, buf []byte) {
	for i := 0; i+8 <= len(buf); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return s
}
