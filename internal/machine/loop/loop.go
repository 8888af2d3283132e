// Package loop attaches raw disk image files to loop block devices with the
// kernel's ioctls directly (no losetup binary). Devices are attached with
// autoclear, so the kernel detaches them as soon as the last user (the
// mount) goes away, and they carry a name starting with "hv" so leftovers of
// a crashed run can be found and detached.
package loop

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrBusy is returned when no free loop device could be claimed.
var ErrBusy = errors.New("loop: no free loop device")

// Device is an attached loop device. Its fd keeps it alive; Close releases
// that reference, after which autoclear detaches it once nothing else (a
// mount) uses it.
type Device struct {
	Path   string
	Number int
	file   *os.File
}

// File returns the open device, e.g. to hand to a child process.
func (d *Device) File() *os.File { return d.file }

// Close drops this process's reference to the device.
func (d *Device) Close() error { return d.file.Close() }

// Attach binds image to a free loop device, tagging it with name (which
// should start with "hv"). Claiming races with other processes, so a busy
// device is retried.
func Attach(image, name string, readOnly bool) (*Device, error) {
	return AttachRange(image, name, readOnly, 0, 0)
}

// AttachRange is Attach of size bytes of image from offset (size 0: to its
// end), e.g. one partition of a partitioned disk. One device per partition
// keeps the kernel's partition scanning, and the partition device nodes
// that would need udev or devtmpfs, out of it.
func AttachRange(image, name string, readOnly bool, offset, size int64) (*Device, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	img, err := os.OpenFile(image, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: open image: %w", err)
	}
	defer img.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: %w", err)
	}
	defer ctl.Close()
	for try := 0; try < 20; try++ {
		d, err := claim(ctl, img, name, readOnly, offset, size)
		if errors.Is(err, unix.EBUSY) {
			continue
		}
		return d, err
	}
	return nil, ErrBusy
}

func claim(ctl, img *os.File, name string, readOnly bool, offset, size int64) (*Device, error) {
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return nil, fmt.Errorf("loop: get free: %w", err)
	}
	path := fmt.Sprintf("/dev/loop%d", n)
	if err := ensureNode(path, n); err != nil {
		return nil, err
	}
	dev, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop: open %s: %w", path, err)
	}
	cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	cfg.Info.Offset, cfg.Info.Sizelimit = uint64(offset), uint64(size)
	if readOnly {
		cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
	}
	copy(cfg.Info.File_name[:63], name)
	if err := unix.IoctlLoopConfigure(int(dev.Fd()), &cfg); err != nil {
		dev.Close()
		return nil, fmt.Errorf("loop: configure %s: %w", path, err)
	}
	return &Device{Path: path, Number: n, file: dev}, nil
}

// ensureNode creates /dev/loopN when /dev is not managed by devtmpfs/udev.
func ensureNode(path string, n int) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(7, uint32(n))))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("loop: mknod %s: %w", path, err)
	}
	return nil
}

// Attached lists loop devices whose name starts with prefix, as
// "/dev/loopN name".
func Attached(prefix string) ([]Info, error) {
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range ents {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "loop%d", &n); err != nil {
			continue
		}
		if info, ok := status(n); ok && strings.HasPrefix(info.Name, prefix) {
			out = append(out, info)
		}
	}
	return out, nil
}

// Info describes an attached loop device.
type Info struct {
	Path string
	Name string
}

func status(n int) (Info, bool) {
	path := fmt.Sprintf("/dev/loop%d", n)
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Info{}, false
	}
	defer f.Close()
	st, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if err != nil { // ENXIO: not attached
		return Info{}, false
	}
	name := string(st.File_name[:])
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return Info{Path: path, Name: name}, true
}

// Detach detaches a loop device (cleanup of a crashed run). A device
// already detached, or gone, is not an error: cleanups repeat.
func Detach(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENXIO) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0)
	if errors.Is(err, unix.ENXIO) {
		return nil
	}
	return err
}

// Gone reports whether loop device n no longer carries the device tagged
// name: it is detached, or already claimed again under another name. A
// number alone is not enough, since once autoclear frees it another
// machine's Attach may take it at once.
func Gone(n int, name string) bool {
	info, ok := status(n)
	return !ok || info.Name != name
}
