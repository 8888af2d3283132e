// Package fileblob stores objects as files under a local directory: the
// embedded default backend. Object "data/3f/3fa9" is the file
// DIR/data/3f/3fa9. Writes go to a temporary file in the same directory that
// is fsynced and renamed into place, and the directory is fsynced, so a crash
// or SIGKILL never leaves a partial object under its final name.
package fileblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/haven-dr/haven/internal/blob"
)

// tmpPrefix starts the names of files still being written. List skips them
// and CheckName refuses object names that start with it.
const tmpPrefix = ".hvtmp-"

// Backend is a directory of objects.
type Backend struct {
	root string
}

var _ blob.Backend = (*Backend)(nil)

// New returns a backend rooted at dir (made absolute). The directory is
// created on the first Put, so opening a missing vault does not create it.
func New(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fileblob: %w", err)
	}
	return &Backend{root: abs}, nil
}

// FromURL accepts file:///abs/path, file://localhost/abs/path or a plain
// path.
func FromURL(raw string) (*Backend, error) {
	if !strings.HasPrefix(raw, "file:") {
		return New(raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("fileblob: %w", err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("fileblob: remote host %q in %q is not supported", u.Host, raw)
	}
	if u.Path == "" {
		return nil, fmt.Errorf("fileblob: no path in %q", raw)
	}
	return New(u.Path)
}

// Location returns the file URL.
func (b *Backend) Location() string { return (&url.URL{Scheme: "file", Path: b.root}).String() }

// Close does nothing; there is nothing to release.
func (b *Backend) Close() error { return nil }

// path validates name and returns its file path.
func (b *Backend) path(name string) (string, error) {
	if err := blob.CheckName(name); err != nil {
		return "", err
	}
	if strings.HasPrefix(filepath.Base(name), tmpPrefix) {
		return "", fmt.Errorf("%w: %q uses the reserved prefix %s", blob.ErrInvalidName, name, tmpPrefix)
	}
	return filepath.Join(b.root, filepath.FromSlash(name)), nil
}

// Put writes data atomically and durably.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := mkdirDurable(dir); err != nil {
		return fmt.Errorf("fileblob: put %s: %w", name, err)
	}
	if err := writeAtomic(dir, p, data); err != nil {
		return fmt.Errorf("fileblob: put %s: %w", name, err)
	}
	return nil
}

// writeAtomic writes a temp file in dir, fsyncs it, renames it to p and
// fsyncs dir so the rename itself survives a power loss.
func writeAtomic(dir, p string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), p); err != nil {
		return err
	}
	return syncDir(dir)
}

// mkdirDurable creates dir and missing parents, fsyncing each new
// directory's parent so the new entries survive a power loss too (the
// object's own rename is made durable by writeAtomic).
func mkdirDurable(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // a concurrent Put made it
		}
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get reads up to length bytes at offset.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	p, err := b.path(name)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("fileblob: get %s: negative offset %d", name, offset)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, b.mapErr(name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, b.mapErr(name, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, blob.NotFound(name)
	}
	n := max(fi.Size()-offset, 0)
	if length >= 0 {
		n = min(n, length)
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, offset); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("fileblob: get %s: %w", name, err)
	}
	return buf, nil
}

// Stat returns the object's size and modification time.
func (b *Backend) Stat(ctx context.Context, name string) (blob.Info, error) {
	p, err := b.path(name)
	if err != nil {
		return blob.Info{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return blob.Info{}, b.mapErr(name, err)
	}
	if !fi.Mode().IsRegular() {
		return blob.Info{}, blob.NotFound(name)
	}
	return blob.Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the object; a missing object is fine.
func (b *Backend) Delete(ctx context.Context, name string) error {
	p, err := b.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fileblob: delete %s: %w", name, err)
	}
	return nil
}

// mapErr turns "no such file" (also "not a directory" for a name below a
// file) into blob.ErrNotFound.
func (b *Backend) mapErr(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return blob.NotFound(name)
	}
	return fmt.Errorf("fileblob: %s: %w", name, err)
}
