package fileblob

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/haven-dr/haven/internal/blob"
)

var errNotDir = syscall.ENOTDIR

// List walks only the directory that the prefix names (for "data/3f/ab"
// that is DIR/data/3f), so listing one index directory does not read the
// whole vault. Temporary files of writes in progress are skipped.
func (b *Backend) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	start := b.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir := path.Clean(prefix[:i])
		if !fs.ValidPath(dir) {
			return nil // such names cannot exist
		}
		start = filepath.Join(b.root, filepath.FromSlash(dir))
	}
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
				return nil
			}
			return err
		}
		return b.visit(ctx, p, d, prefix, fn)
	})
	return err
}

// visit reports one walked entry if it is a finished object under prefix.
func (b *Backend) visit(ctx context.Context, p string, d fs.DirEntry, prefix string, fn func(blob.Info) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rel, err := filepath.Rel(b.root, p)
	if err != nil {
		return err
	}
	name := filepath.ToSlash(rel)
	if d.IsDir() {
		return pruneDir(name, prefix)
	}
	if !d.Type().IsRegular() || strings.HasPrefix(d.Name(), tmpPrefix) {
		return nil
	}
	if !strings.HasPrefix(name, prefix) {
		return nil
	}
	fi, err := d.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // deleted while we walked
	}
	if err != nil {
		return err
	}
	return fn(blob.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
}

// pruneDir skips a directory whose objects cannot match prefix.
func pruneDir(dir, prefix string) error {
	if dir == "." {
		return nil
	}
	d := dir + "/"
	if strings.HasPrefix(d, prefix) || strings.HasPrefix(prefix, d) {
		return nil
	}
	return fs.SkipDir
}
