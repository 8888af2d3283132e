package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/zeebo/blake3"
)

// DiskSource is a disk to capture: a raw image file or a block device.
type DiskSource struct {
	Name string
	Path string
}

// SnapshotOptions describe one recovery point to take.
type SnapshotOptions struct {
	Machine     string
	Disks       []DiskSource
	Time        time.Time // capture instant; zero means now
	Consistency string    // CrashConsistent (default) or AppConsistent
	Provider    string    // how consistency was obtained (reflink, fsfreeze, hooks, none)
	Group       string
	Tags        map[string]string
	Progress    func(bytes int64) // called as data is read
	LockWait    time.Duration     // how long to wait for a prune to finish
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
	}
	switch o.Consistency {
	case "":
		o.Consistency = CrashConsistent
	case CrashConsistent, AppConsistent:
	default:
		return fmt.Errorf("consistency %q: want %q or %q", o.Consistency, CrashConsistent, AppConsistent)
	}
	return nil
}

// Snapshot takes one recovery point of a machine's disks.
func (v *Vault) Snapshot(ctx context.Context, opt SnapshotOptions) (*Point, *SnapshotStats, error) {
	if err := opt.validate(); err != nil {
		return nil, nil, err
	}
	start := time.Now()
	if opt.Time.IsZero() {
		opt.Time = start
	}
	lock, err := v.acquire(ctx, lockShared, opt.LockWait)
	if err != nil {
		return nil, nil, err
	}
	defer lock.Release()
	idx, err := v.loadIndex(ctx)
	if err != nil {
		return nil, nil, err
	}
	host, _ := os.Hostname()
	p := &Point{ID: newPointID(opt.Time), Machine: opt.Machine, Time: opt.Time.UTC(), Consistency: opt.Consistency,
		Provider: opt.Provider, Group: opt.Group, Host: host, Tags: opt.Tags, ChunkSize: v.cfg.ChunkSize}
	st := &SnapshotStats{}
	s := newSaver(ctx, v, idx)
	for _, src := range opt.Disks {
		d, err := s.saveDisk(src, st, opt.Progress)
		if err != nil {
			s.abort(err)
			return nil, nil, err
		}
		p.Disks = append(p.Disks, *d)
	}
	if err := s.finish(); err != nil {
		return nil, nil, fmt.Errorf("upload: %w", err)
	}
	if err := v.commit(ctx, s, p, st); err != nil {
		return nil, nil, err
	}
	st.Duration = time.Since(start)
	return p, st, nil
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

// saveDisk reads one disk, stores its new chunks and pages, and returns its
// manifest entry.
func (s *saver) saveDisk(src DiskSource, st *SnapshotStats, progress func(int64)) (*Disk, error) {
	f, err := os.Open(src.Path)
	if err != nil {
		return nil, fmt.Errorf("disk %s: %w", src.Name, err)
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return nil, fmt.Errorf("disk %s: size: %w", src.Name, err)
	}
	ids, zero, err := s.chunkFile(f, size, progress)
	if err != nil {
		return nil, fmt.Errorf("disk %s: %w", src.Name, err)
	}
	st.Bytes += size
	st.ZeroBytes += zero
	d := &Disk{Name: src.Name, Size: size}
	for i := 0; i < len(ids); i += pageEntries {
		page := encodePage(ids[i:min(i+pageEntries, len(ids))])
		pid := s.v.hashID(page)
		if err := s.save(pageBlob, pid, page); err != nil {
			return nil, err
		}
		d.Pages = append(d.Pages, pid)
	}
	return d, nil
}

// chunkFile stores f's chunks and returns their IDs in disk order and how
// many bytes were all-zero chunks.
func (s *saver) chunkFile(f *os.File, size int64, progress func(int64)) ([]ID, int64, error) {
	cs := int64(s.v.cfg.ChunkSize)
	ids := make([]ID, (size+cs-1)/cs)
	var zero atomic.Int64
	err := s.v.scanFile(s.ctx, f, size, func(h *blake3.Hasher, i, n int64, chunk []byte) error {
		if chunk == nil {
			zero.Add(n)
			return nil // ids[i] is already zeroID
		}
		ids[i] = sumID(h, chunk)
		return s.save(dataBlob, ids[i], chunk)
	}, progress)
	return ids, zero.Load(), err
}
