package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// DiskSource is a disk to capture: a raw image file or a block device at
// Path, or, when Reader is set, Size bytes read through it (an NBD export
// of a running VM's disk); Path is then unused.
type DiskSource struct {
	Name   string
	Path   string
	Reader io.ReaderAt
	Size   int64
}

// SnapshotOptions describe one recovery point to take.
type SnapshotOptions struct {
	Machine     string
	Disks       []DiskSource
	Time        time.Time // capture instant; zero means now
	Consistency string    // Inconsistent (default: nothing kept the disks still), CrashConsistent or AppConsistent
	Provider    string    // how consistency was obtained (reflink, fsfreeze, hooks, none)
	Group       string
	Tags        map[string]string
	Progress    func(bytes int64) // called as data is read
	LockWait    time.Duration     // unused: snapshots never wait for a prune (kept for callers)
	// Previous: per disk, the chunk IDs of the machine's previous point
	// (the agent's change-tracking cache), so the point's churn figures
	// say which chunks were overwritten. Optional.
	Previous map[string][]ID
}

// SnapshotStats reports what a snapshot read and stored.
type SnapshotStats struct {
	Bytes       int64         `json:"bytes"`        // logical size of all disks
	ZeroBytes   int64         `json:"zero_bytes"`   // of which all-zero chunks
	NewChunks   int64         `json:"new_chunks"`   // chunks not yet in the vault
	NewBytes    int64         `json:"new_bytes"`    // their plaintext size
	StoredBytes int64         `json:"stored_bytes"` // bytes written to storage
	Packs       int64         `json:"packs"`
	Duration    time.Duration `json:"duration_ns"`
}

func (o *SnapshotOptions) validate() error {
	if err := ValidName("machine", o.Machine); err != nil {
		return err
	}
	if len(o.Disks) == 0 {
		return errors.New("no disks to snapshot")
	}
	seen := map[string]bool{}
	for _, d := range o.Disks {
		if err := ValidName("disk", d.Name); err != nil {
			return err
		}
		if seen[d.Name] {
			return fmt.Errorf("disk %q given twice", d.Name)
		}
		seen[d.Name] = true
		if d.Reader != nil && d.Size < 0 {
			return fmt.Errorf("disk %q: size %d", d.Name, d.Size)
		}
	}
	switch o.Consistency {
	case "":
		o.Consistency = Inconsistent
	case Inconsistent, CrashConsistent, AppConsistent:
	default:
		return fmt.Errorf("consistency %q: want %q, %q or %q", o.Consistency, Inconsistent, CrashConsistent, AppConsistent)
	}
	return nil
}

// Snapshot takes one recovery point of a machine's disks.
func (v *Vault) Snapshot(ctx context.Context, opt SnapshotOptions) (*Point, *SnapshotStats, error) {
	res, err := v.SnapshotKnown(ctx, opt, nil)
	if err != nil {
		return nil, nil, err
	}
	return res.Point, res.Stats, nil
}

// commit writes the index of the new packs, then the manifest: the point
// exists only once everything it references is durable and indexed.
func (v *Vault) commit(ctx context.Context, s *saver, p *Point, st *SnapshotStats) error {
	st.NewChunks, st.NewBytes = s.newChunks.Load(), s.newBytes.Load()
	st.StoredBytes, st.Packs = s.storedBytes.Load(), s.nPacks.Load()
	if len(s.packs) > 0 {
		if _, err := v.saveIndex(ctx, s.packs); err != nil {
			return err
		}
	}
	if err := v.savePoint(ctx, p); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}
