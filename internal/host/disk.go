package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/vault"
	"golang.org/x/sys/unix"
)

// diskRecord sits beside a prepared disk once it holds the point
// completely; a disk without it is unfinished and is completed in place.
type diskRecord struct {
	Machine string `json:"machine"`
	Disk    string `json:"disk"`
	Point   string `json:"point"`
}

func doneFile(path string) string { return path + ".hvdone" }

func (h *Local) standbyPath(machineName, disk string) string {
	return filepath.Join(h.dir, "standby", machineName, disk+".img")
}

func (h *Local) PrepareDisk(ctx context.Context, req DiskRequest) (*DiskResult, error) {
	if err := h.epoch.Check(ctx); err != nil {
		return nil, err
	}
	return h.prepareDisk(ctx, req, "")
}

// prepareDisk is PrepareDisk onto a target that, if it exists, holds point
// base exactly ("" when that is not known): the delta then comes from the
// two manifests instead of hashing the whole target.
func (h *Local) prepareDisk(ctx context.Context, req DiskRequest, base string) (*DiskResult, error) {
	start := time.Now()
	var rec diskRecord
	if readJSON(doneFile(req.Target), &rec) == nil && rec.Point == req.Point && rec.Disk == req.Disk && rec.Machine == req.Machine {
		if fi, err := os.Stat(req.Target); err == nil {
			return &DiskResult{Method: "existing", Size: fi.Size()}, nil
		}
	}
	os.Remove(doneFile(req.Target))
	if err := os.MkdirAll(filepath.Dir(req.Target), 0o700); err != nil {
		return nil, err
	}
	res := &DiskResult{Method: "restore"}
	standby := h.standbyPath(req.Machine, req.Disk)
	if _, err := os.Stat(req.Target); err == nil {
		res.Method = "in-place" // a disk from before (change of point, or a crash): delta
	} else if _, err := os.Stat(doneFile(standby)); err == nil && !req.NoStandby {
		held, err := h.cloneStandby(standby, req)
		if err != nil {
			return nil, fmt.Errorf("host: clone standby of %s/%s: %w", req.Machine, req.Disk, err)
		}
		res.Method, base = "standby-clone", held
		if held == req.Point {
			// The standby held this very point, unchanged while it was
			// cloned: nothing to compare, whatever the disk's size.
			fi, err := os.Stat(req.Target)
			if err != nil {
				return nil, err
			}
			res.Size, res.Duration = fi.Size(), time.Since(start)
			return res, writeJSON(doneFile(req.Target), diskRecord{Machine: req.Machine, Disk: req.Disk, Point: req.Point})
		}
	}
	// Onto a clone (or a disk a crash left unfinished) this writes only
	// the chunks that differ from the point; onto nothing, all of it.
	st, err := h.vault.Restore(ctx, vault.RestoreOptions{Machine: req.Machine, Point: req.Point, Disk: req.Disk, Target: req.Target, Base: base})
	if err != nil {
		return nil, fmt.Errorf("host: disk %s/%s of point %s: %w", req.Machine, req.Disk, req.Point, err)
	}
	res.Size, res.BytesWritten, res.BytesFetched, res.BytesCompared = st.Size, st.BytesWritten, st.BytesFetched, st.BytesCompared
	res.Duration = time.Since(start)
	return res, writeJSON(doneFile(req.Target), diskRecord{Machine: req.Machine, Disk: req.Disk, Point: req.Point})
}

func (h *Local) RemoveDisk(ctx context.Context, path string) error {
	if err := h.epoch.Check(ctx); err != nil {
		return err
	}
	// What a server killed mid-restore or mid-clone left beside the disk
	// goes too, or a crash would leak disk space.
	vault.RemoveRestoreLeftovers(path)
	for _, p := range []string{doneFile(path) + ".hvtmp", path + ".hvtmp", doneFile(path), path} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (h *Local) UpdateStandby(ctx context.Context, machineName, disk, point string) (*DiskResult, error) {
	if err := h.epoch.Check(ctx); err != nil {
		return nil, err
	}
	target := h.standbyPath(machineName, disk)
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return nil, err
	}
	unlock, err := lockFile(target+".lock", true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var rec diskRecord
	base := ""
	if readJSON(doneFile(target), &rec) == nil {
		fi, err := os.Stat(target)
		if err == nil && rec.Point == point {
			return &DiskResult{Method: "existing", Size: fi.Size()}, nil
		}
		if err == nil && rec.Machine == machineName && rec.Disk == disk {
			// Nothing writes a standby but this refresh, under its
			// lock, and the record is only there when a refresh finished:
			// the standby holds rec.Point exactly.
			base = rec.Point
		}
	}
	// The record goes first: a standby being written is no standby.
	os.Remove(doneFile(target))
	return h.prepareDisk(ctx, DiskRequest{Machine: machineName, Disk: disk, Point: point, Target: target, NoStandby: true}, base)
}

// cloneStandby clones the standby to req.Target. held is the point the
// clone is known to hold: the standby's record named it and no refresh was
// writing the standby meanwhile (its lock was free). When a refresh is
// running the clone is taken anyway, held is "", and the caller's delta
// restore makes it right by comparing every chunk.
func (h *Local) cloneStandby(standby string, req DiskRequest) (held string, err error) {
	unlock, err := lockFile(standby+".lock", false)
	if err != nil && !errors.Is(err, errBusy) {
		return "", err
	}
	if err == nil {
		defer unlock()
		held = h.StandbyPoint(req.Machine, req.Disk)
	}
	return held, cloneFile(standby, req.Target)
}

var errBusy = errors.New("busy")

// lockFile takes an exclusive flock on path (made if missing); without
// wait a held lock is errBusy.
func lockFile(path string, wait bool) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errBusy
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}

// StandbyPoint is the point a machine's standby disk holds ("" if none).
func (h *Local) StandbyPoint(machineName, disk string) string {
	var rec diskRecord
	if readJSON(doneFile(h.standbyPath(machineName, disk)), &rec) != nil {
		return ""
	}
	return rec.Point
}

// Standbys lists the standby images under the host's directory.
func (h *Local) Standbys(ctx context.Context) ([]StandbyImage, error) {
	imgs, err := filepath.Glob(filepath.Join(h.dir, "standby", "*", "*.img"))
	if err != nil {
		return nil, err
	}
	var out []StandbyImage
	for _, p := range imgs {
		m, d := filepath.Base(filepath.Dir(p)), strings.TrimSuffix(filepath.Base(p), ".img")
		out = append(out, StandbyImage{Machine: m, Disk: d, Point: h.StandbyPoint(m, d)})
	}
	return out, nil
}

// RemoveStandby drops a standby image, waiting for a refresh or a clone
// of it to end. Gone already is done.
func (h *Local) RemoveStandby(ctx context.Context, machineName, disk string) error {
	if err := h.epoch.Check(ctx); err != nil {
		return err
	}
	for _, n := range []string{machineName, disk} {
		if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\x00") {
			return fmt.Errorf("host: standby %q/%q: not a machine and disk name", machineName, disk)
		}
	}
	target := h.standbyPath(machineName, disk)
	if _, err := os.Stat(filepath.Dir(target)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := lockFile(target+".lock", true)
	if err != nil {
		return err
	}
	// The record first: a standby half removed is no standby.
	for _, p := range []string{doneFile(target), target + ".hvtmp", target} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			unlock()
			return err
		}
	}
	unlock()
	os.Remove(target + ".lock")
	os.Remove(filepath.Dir(target)) // the machine's directory, once empty
	return nil
}

// cloneFile makes dst a copy of src: a reflink (FICLONE) where the
// filesystem shares blocks, so a clone of any size takes milliseconds;
// otherwise a sparse copy. dst appears only complete.
func cloneFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".hvtmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err != nil {
		if err := sparseCopy(out, in); err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// sparseCopy copies only the data extents of in (SEEK_DATA/SEEK_HOLE).
func sparseCopy(out, in *os.File) error {
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if err := out.Truncate(size); err != nil {
		return err
	}
	fd := int(in.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			break // ENXIO: only a hole is left
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			hole = size
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return err
		}
		off = hole
	}
	return nil
}
