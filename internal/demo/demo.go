// Package demo is Haven's main job on embedded defaults: the seed scenario
// (RunScenario: a web shop and PostgreSQL protected, drilled, lost in a
// disaster, failed over and failed back, measured from the customers'
// side; docs/scenario.md) and the vault walk-through (Run: one sample disk
// snapshotted, checked and restored).
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/vault"
)

// Options of the demo.
type Options struct {
	Dir      string // work directory; created if missing
	Password string
	DiskSize int64
	KDF      vault.KDFParams
}

// Run creates a vault, snapshots a sample disk twice (the second time after
// scattered writes), checks every byte, restores the latest point to a new
// image and the first one in place, verifying both by SHA-256.
func Run(ctx context.Context, opt Options, w io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	if err := os.MkdirAll(opt.Dir, 0o755); err != nil {
		return err
	}
	be, err := fileblob.New(filepath.Join(opt.Dir, "vault"))
	if err != nil {
		return err
	}
	v, err := vault.Open(ctx, be, opt.Password, vault.Options{KDF: opt.KDF})
	if err != nil {
		say("1. creating vault %s", be.Location())
		v, err = vault.Init(ctx, be, opt.Password, vault.Options{KDF: opt.KDF})
	} else {
		say("1. using existing vault %s", be.Location())
	}
	if err != nil {
		return err
	}
	defer v.Close()

	disk := filepath.Join(opt.Dir, "sql-server-data.img")
	say("2. writing a sample %d MiB disk image of the seed's SQL Server VM: %s", opt.DiskSize>>20, disk)
	if err := sampleDisk(disk, opt.DiskSize); err != nil {
		return err
	}
	src := []vault.DiskSource{{Name: "data", Path: disk}}
	p1, st, err := v.Snapshot(ctx, vault.SnapshotOptions{Machine: "sql", Disks: src})
	if err != nil {
		return err
	}
	say("3. recovery point %s: read %s (%s zero, never stored), stored %s in %.2fs", p1.ID,
		mib(st.Bytes), mib(st.ZeroBytes), mib(st.StoredBytes), st.Duration.Seconds())
	changed, err := scatter(disk, opt.DiskSize/100)
	if err != nil {
		return err
	}
	p2, st, err := v.Snapshot(ctx, vault.SnapshotOptions{Machine: "sql", Disks: src})
	if err != nil {
		return err
	}
	say("4. after %s of scattered 4 KiB writes, recovery point %s stored only %s (%d new chunks)",
		mib(changed), p2.ID, mib(st.StoredBytes), st.NewChunks)
	rep, err := v.Check(ctx, vault.CheckOptions{ReadData: true})
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return err
	}
	say("5. check --read-data: %d points, %d packs (%s) verified, no problems", rep.Points, rep.Packs, mib(rep.PackBytes))
	return restoreBoth(ctx, v, opt.Dir, disk, p1, say)
}

func restoreBoth(ctx context.Context, v *vault.Vault, dir, disk string, p1 *vault.Point, say func(string, ...any)) error {
	out := filepath.Join(dir, "recovered-data.img")
	os.Remove(out)
	rs, err := v.Restore(ctx, vault.RestoreOptions{Machine: "sql", Disk: "data", Target: out})
	if err != nil {
		return err
	}
	if err := sameFile(disk, out); err != nil {
		return err
	}
	say("6. restored the latest point to %s: wrote %s sparse, SHA-256 equals the source", out, mib(rs.BytesWritten))
	rs, err = v.Restore(ctx, vault.RestoreOptions{Machine: "sql", Point: p1.ID, Disk: "data", Target: out})
	if err != nil {
		return err
	}
	say("7. rolled %s back to the first point in place: %d of %d chunks differed, wrote %s (this is what makes failback cheap)",
		filepath.Base(out), rs.ChunksWritten, rs.ChunksWritten+rs.ChunksUnchanged, mib(rs.BytesWritten))
	st, err := v.Stats(ctx)
	if err != nil {
		return err
	}
	say("8. vault: %d points, %s logical, %s stored, dedup ratio %.1fx", st.Points, mib(st.LogicalBytes), mib(st.StoredBytes), st.DedupRatio)
	return nil
}

// sampleDisk writes a sparse image like a database server's data disk:
// text-like pages, incompressible blobs and unallocated space.
func sampleDisk(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	words := strings.Fields("order customer invoice shipped pending 2026-11-25 total EUR SMB recovery web sql")
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size*6/10; off += int64(len(buf)) {
		if (off>>20)%5 == 4 {
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
		} else {
			for i := 0; i < len(buf); {
				i += copy(buf[i:], words[rng.IntN(len(words))]+" ")
			}
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
	}
	return f.Sync()
}

// scatter overwrites random 4 KiB blocks, n bytes in all.
func scatter(path string, n int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	blk := make([]byte, 4096)
	var done int64
	for ; done < n; done += 4096 {
		for i := range blk {
			blk[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(blk, rng.Int64N(fi.Size()/4096)*4096); err != nil {
			return done, err
		}
	}
	return done, f.Sync()
}

func sameFile(a, b string) error {
	ha, err := fileSHA(a)
	if err != nil {
		return err
	}
	hb, err := fileSHA(b)
	if err != nil {
		return err
	}
	if ha != hb {
		return fmt.Errorf("restored image %s differs from %s", b, a)
	}
	return nil
}

func fileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
