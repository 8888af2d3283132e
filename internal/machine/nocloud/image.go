package nocloud

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
)

// Label is the volume label cloud-init's NoCloud datasource looks for.
const Label = "cidata"

// WriteImage writes docs (file name to content) as an ISO9660 image with
// Rock Ridge and Joliet names (plain ISO9660 cannot spell "meta-data"),
// labelled cidata, as cloud-localds does. The image replaces path only
// once it is complete.
func WriteImage(path string, docs map[string][]byte) (err error) {
	work, err := os.MkdirTemp(filepath.Dir(path), ".cidata-")
	if err != nil {
		return fmt.Errorf("nocloud: %w", err)
	}
	defer os.RemoveAll(work)
	tmp := filepath.Join(work, "seed.iso")
	if err := writeISO(tmp, filepath.Join(work, "tree"), docs); err != nil {
		return fmt.Errorf("nocloud: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("nocloud: %w", err)
	}
	return nil
}

func writeISO(img, tree string, docs map[string][]byte) error {
	if err := os.Mkdir(tree, 0o755); err != nil {
		return err
	}
	size := int64(1 << 20) // system area, descriptors and directories
	for _, b := range docs {
		size += int64(len(b)) + 2048
	}
	b, err := file.CreateFromPath(img, size)
	if err != nil {
		return err
	}
	defer b.Close()
	fs, err := iso9660.Create(b, size, 0, 2048, tree)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(docs))
	for n := range docs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f, err := fs.OpenFile("/"+n, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return err
		}
		_, err = f.Write(docs[n])
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	return fs.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: Label})
}
