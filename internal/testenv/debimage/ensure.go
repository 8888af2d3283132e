package debimage

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrToolMissing is returned (wrapped) when the image must be built and a
// build tool is not installed.
var ErrToolMissing = errors.New("debimage: build tool missing")

// CacheDir holds the built images, one per recipe key.
var CacheDir = "/var/cache/haven/images"

// Image is a built test image. Callers must not write to Path: take a
// Copy.
type Image struct {
	Path          string `json:"path"`
	Key           string `json:"key"`            // recipe hash naming the cache entry
	ESPPartition  int    `json:"esp_partition"`  // 1-based
	RootPartition int    `json:"root_partition"` // 1-based
	RootOffset    int64  `json:"root_offset"`    // bytes from the start of the disk
	RootSize      int64  `json:"root_size"`      // bytes
	RootPartUUID  string `json:"root_partuuid"`
	RootFSUUID    string `json:"root_fsuuid"`
	Kernel        string `json:"kernel"` // version, as in /boot/vmlinuz-<Kernel>
	Cmdline       string `json:"cmdline"`
	Size          int64  `json:"size"` // apparent size; the file is sparse
}

// ReadyMarker is printed on the console once PostgreSQL accepts connections.
const ReadyMarker = "haven-test-image: ready"

// buildTools are the host programs a build runs.
var buildTools = []string{"mmdebstrap", "mkfs.ext4", "mkfs.vfat", "mmd", "mcopy",
	"sfdisk", "extlinux", "losetup", "mount", "umount", "chroot"}

// Ensure returns the cached image, building it the first time. Concurrent
// callers and processes wait on a flock; the build writes to a temporary
// directory and renames into place, so a killed build never leaves a half
// image.
func Ensure(ctx context.Context) (Image, error) {
	sources := aptSources()
	key, err := recipeKey(sources)
	if err != nil {
		return Image{}, fmt.Errorf("debimage: recipe: %w", err)
	}
	if err := os.MkdirAll(CacheDir, 0o755); err != nil {
		return Image{}, fmt.Errorf("debimage: %w", err)
	}
	unlock, err := lock(ctx, filepath.Join(CacheDir, ".lock"))
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	meta := filepath.Join(CacheDir, "debian-"+Suite+"-"+key+".json")
	if img, err := readMeta(meta); err == nil {
		return img, nil
	}
	if len(sources) == 0 {
		return Image{}, fmt.Errorf("%w: no Debian %s apt sources in /etc/apt", ErrToolMissing, Suite)
	}
	for _, t := range buildTools {
		if _, err := exec.LookPath(t); err != nil {
			return Image{}, fmt.Errorf("%w: %s", ErrToolMissing, t)
		}
	}
	if err := removeStale(); err != nil {
		return Image{}, err
	}
	return buildEntry(ctx, key, meta, sources)
}

func buildEntry(ctx context.Context, key, meta string, sources []string) (Image, error) {
	work := filepath.Join(CacheDir, "hvbuild-"+strings.ToLower(rand.Text()[:8]))
	if err := os.Mkdir(work, 0o755); err != nil {
		return Image{}, fmt.Errorf("debimage: %w", err)
	}
	defer removeWork(work)
	start := time.Now()
	slog.Info("debimage: building test image", "suite", Suite, "key", key, "work", work)
	tmp := filepath.Join(work, "disk.img")
	kver, err := build(ctx, work, tmp, sources)
	if err != nil {
		return Image{}, err
	}
	img := Image{
		Path: filepath.Join(CacheDir, "debian-"+Suite+"-"+key+".img"), Key: key,
		ESPPartition: espPart, RootPartition: rootPart, RootOffset: rootStart, RootSize: rootSize,
		RootPartUUID: rootPartUUID, RootFSUUID: rootFSUUID, Kernel: kver, Cmdline: cmdline(),
		Size: diskSize,
	}
	if err := os.Rename(tmp, img.Path); err != nil {
		return Image{}, fmt.Errorf("debimage: %w", err)
	}
	// The metadata is the commit: written last, and only it marks an
	// entry as present.
	b, _ := json.MarshalIndent(img, "", "  ")
	if err := os.WriteFile(filepath.Join(work, "meta.json"), b, 0o644); err != nil {
		return Image{}, fmt.Errorf("debimage: %w", err)
	}
	if err := os.Rename(filepath.Join(work, "meta.json"), meta); err != nil {
		return Image{}, fmt.Errorf("debimage: %w", err)
	}
	slog.Info("debimage: test image built", "path", img.Path, "kernel", kver,
		"took", time.Since(start).Round(time.Second))
	return img, nil
}

func readMeta(p string) (Image, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return Image{}, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return Image{}, err
	}
	if _, err := os.Stat(img.Path); err != nil {
		return Image{}, err
	}
	return img, nil
}

// lock takes an exclusive flock on p, polling so that ctx can end the wait.
func lock(ctx context.Context, p string) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("debimage: %w", err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("debimage: lock %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("debimage: waiting for another build: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
