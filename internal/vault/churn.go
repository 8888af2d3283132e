package vault

import "sync/atomic"

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
}

// churnCounter accumulates a Churn from the scan's parallel workers.
type churnCounter struct {
	prev                                        []ID
	read, changed, overwritten, zeroed          atomic.Int64
	newRaw, newStored, incompressible, owIncomp atomic.Int64
}

// chunk counts chunk i of n bytes read with id; stored is what save
// reported (-1: not new to the vault).
func (c *churnCounter) chunk(i, n int64, id ID, stored int) {
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
		NewStored: c.newStored.Load(), Incompressible: c.incompressible.Load(), OverwrittenIncompressible: c.owIncomp.Load()}
}
