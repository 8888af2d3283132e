package vault

import (
	"math"
	"sync/atomic"
)

// Churn is what changed on one disk since the machine's previous point,
// as a snapshot saw it: the raw material of encryption detection
// (internal/churn). Mass encryption rewrites data that existed with data
// that no longer compresses, so the figures separate chunks that held
// data before (overwritten) from chunks written into empty space, and
// new data that compressed from new data that did not.
type Churn struct {
	// Baseline: the previous point's chunk IDs were known, so Changed,
	// Overwritten, Zeroed and OverwrittenIncompressible are exact.
	// Without it (a machine's first point, a plain `haven snapshot`)
	// only Read, New, NewStored and Incompressible mean anything.
	Baseline bool  `json:"baseline"`
	Read     int64 `json:"read"` // bytes read and hashed (the rest was known unchanged or a hole)
	// Changed: bytes of chunks whose content differs from the previous
	// point's chunk at the same offset (a grown disk's tail counts).
	Changed int64 `json:"changed"`
	// Overwritten: of Changed, chunks that held data (were not all
	// zeros) in the previous point.
	Overwritten int64 `json:"overwritten"`
	// Zeroed: chunks that held data and are now all zeros (discarded).
	Zeroed int64 `json:"zeroed"`
	// New: raw bytes of chunks new to the vault; NewStored: their size
	// after compression (before sealing).
	New       int64 `json:"new"`
	NewStored int64 `json:"new_stored"`
	// Incompressible: raw bytes of new chunks that zstd could not shrink
	// by 1/32 (stored as they are).
	Incompressible int64 `json:"incompressible"`
	// OverwrittenIncompressible: chunks that held data before, now
	// hold new incompressible data: the signature of in-place encryption.
	OverwrittenIncompressible int64 `json:"overwritten_incompressible"`
	// OverwrittenRandom: 4 KiB blocks of new chunks that held data
	// before whose bytes look random (entropy of at least randomBits per
	// byte). A file smaller than a chunk, encrypted in place, shares its
	// chunk with other data, and the chunk as a whole still compresses:
	// only this figure sees it. Absent (0) in points of older agents.
	OverwrittenRandom int64 `json:"overwritten_random,omitempty"`
	// NewRandom: 4 KiB blocks that look random in all the chunks new to
	// the vault, wherever they landed (measured only with a baseline).
	// Ciphertext written over space that held zeros (a database's
	// preallocated log or relation tails) is not an overwrite, yet it is
	// the quiet start of an attack: the detector's walk-back from an
	// alert looks at this too. Absent (0) in points of older agents.
	NewRandom int64 `json:"new_random,omitempty"`
}

// randomBlock and randomBits define a block that looks random: the
// byte entropy of 4 KiB of ciphertext (or of compressed data) is about
// 7.95 bits; text is near 5, machine code near 6.5, database pages lower.
const (
	randomBlock = 4 << 10
	randomBits  = 7.8
)

// xlogx[c] is c·log2(c), for the entropy of a block's byte counts.
var xlogx = func() (t [randomBlock + 1]float64) {
	for c := 2; c <= randomBlock; c++ {
		t[c] = float64(c) * math.Log2(float64(c))
	}
	return t
}()

// randomBytes counts the bytes of data's whole 4 KiB blocks that look random.
func randomBytes(data []byte) int64 {
	var n int64
	for off := 0; off+randomBlock <= len(data); off += randomBlock {
		var counts [256]uint16
		for _, b := range data[off : off+randomBlock] {
			counts[b]++
		}
		sum := 0.0
		for _, c := range counts {
			sum += xlogx[c]
		}
		// H = log2(N) - Σ c·log2(c) / N
		if 12-sum/randomBlock >= randomBits {
			n += randomBlock
		}
	}
	return n
}

// churnCounter accumulates a Churn from the scan's parallel workers.
type churnCounter struct {
	prev                                        []ID
	read, changed, overwritten, zeroed          atomic.Int64
	newRaw, newStored, incompressible, owIncomp atomic.Int64
	owRandom, newRandom                         atomic.Int64
}

// chunk counts chunk i of n bytes read with id and content data (nil
// for zeros); stored is what save reported (-1: not new to the vault).
func (c *churnCounter) chunk(i, n int64, id ID, stored int, data []byte) {
	c.read.Add(n)
	var before ID // beyond the previous point's end (or without one): zeros
	if i < int64(len(c.prev)) {
		before = c.prev[i]
	}
	if id == before {
		return
	}
	c.changed.Add(n)
	held := !before.IsZero()
	if held {
		c.overwritten.Add(n)
		if id.IsZero() {
			c.zeroed.Add(n)
		}
	}
	if stored < 0 {
		return
	}
	c.newRaw.Add(n)
	c.newStored.Add(int64(stored))
	if c.prev != nil {
		r := randomBytes(data)
		c.newRandom.Add(r)
		if held {
			c.owRandom.Add(r)
		}
	}
	if int64(stored) >= n {
		c.incompressible.Add(n)
		if held {
			c.owIncomp.Add(n)
		}
	}
}

func (c *churnCounter) result() *Churn {
	return &Churn{Baseline: c.prev != nil, Read: c.read.Load(), Changed: c.changed.Load(),
		Overwritten: c.overwritten.Load(), Zeroed: c.zeroed.Load(), New: c.newRaw.Load(),
		NewStored: c.newStored.Load(), Incompressible: c.incompressible.Load(), OverwrittenIncompressible: c.owIncomp.Load(),
		OverwrittenRandom: c.owRandom.Load(), NewRandom: c.newRandom.Load()}
}
