package fileblob

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SweepPartial removes temporary files of writers that died before their
// rename, once older than age (a live writer's file is younger).
func (b *Backend) SweepPartial(ctx context.Context, age time.Duration) (int, int64, error) {
	var n int
	var bytes int64
	err := filepath.WalkDir(b.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil || time.Since(fi.ModTime()) < age {
			return nil
		}
		if err := os.Remove(p); err == nil {
			n++
			bytes += fi.Size()
		}
		return nil
	})
	return n, bytes, err
}
