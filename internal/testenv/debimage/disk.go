package debimage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// gptMBR is syslinux's protective-MBR boot code: it chains to the GPT
// partition marked legacy-BIOS-bootable.
var gptMBRPaths = []string{"/usr/lib/syslinux/mbr/gptmbr.bin", "/usr/lib/EXTLINUX/gptmbr.bin"}

// makeDisk lays root out as the partitioned image out: the ESP and the
// root filesystem are written straight into the image file at their
// offsets, so only extlinux, which must see a mounted filesystem, needs a
// loop device.
func makeDisk(ctx context.Context, work, root, out, kver string) error {
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("debimage: %w", err)
	}
	err = f.Truncate(diskSize)
	f.Close()
	if err != nil {
		return fmt.Errorf("debimage: %w", err)
	}
	steps := []func() error{
		func() error { return partition(ctx, out) },
		func() error { return makeESP(ctx, root, out, kver) },
		func() error {
			return run(ctx, "mkfs.ext4", "-q", "-F", "-L", "root", "-U", rootFSUUID,
				// syslinux cannot read 64bit ext4; 2 GiB never needs it.
				"-O", "^64bit", "-E", fmt.Sprintf("offset=%d", rootStart),
				"-d", root, out, fmt.Sprintf("%dk", rootSize/1024))
		},
		func() error { return installExtlinux(ctx, work, out) },
		func() error { return writeMBR(out) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

func partition(ctx context.Context, img string) error {
	script := fmt.Sprintf(`label: gpt
label-id: %s
first-lba: 2048
start=%d, size=%d, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=%s, name="ESP"
start=%d, size=%d, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=%s, name="root", attrs="LegacyBIOSBootable"
`, diskGUID, espStart/512, espSize/512, espPartUUID, rootStart/512, rootSize/512, rootPartUUID)
	cmd := exec.CommandContext(ctx, "sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", img)
	cmd.Stdin = strings.NewReader(script)
	return runCmd(cmd)
}

// makeESP formats partition 1 and copies systemd-boot (as the removable
// media fallback loader, which OVMF boots without NVRAM entries), its
// loader entry, the kernel and the initrd into it.
func makeESP(ctx context.Context, root, img, kver string) error {
	if err := run(ctx, "mkfs.vfat", "-F", "32", "-s", "1", "-n", "ESP", "-i", espVolumeID,
		fmt.Sprintf("--offset=%d", espStart/512), img, fmt.Sprint(espSize/1024)); err != nil {
		return err
	}
	at := fmt.Sprintf("%s@@%d", img, espStart)
	for _, d := range []string{"::/EFI", "::/EFI/BOOT", "::/EFI/systemd", "::/loader", "::/loader/entries"} {
		if err := mtools(ctx, "mmd", "-i", at, d); err != nil {
			return err
		}
	}
	sdboot := filepath.Join(root, "usr/lib/systemd/boot/efi/systemd-bootx64.efi")
	copies := [][2]string{
		{sdboot, "::/EFI/BOOT/BOOTX64.EFI"},
		{sdboot, "::/EFI/systemd/systemd-bootx64.efi"},
		{filepath.Join(root, "boot", "vmlinuz-"+kver), "::/vmlinuz-" + kver},
		{filepath.Join(root, "boot", "initrd.img-"+kver), "::/initrd.img-" + kver},
	}
	tmp := filepath.Join(filepath.Dir(img), "esp-files")
	for name, content := range systemdBootFiles(kver) {
		p := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
		copies = append(copies, [2]string{p, "::/" + name})
	}
	defer os.RemoveAll(tmp)
	for _, c := range copies {
		if err := mtools(ctx, "mcopy", "-i", at, c[0], c[1]); err != nil {
			return err
		}
	}
	return nil
}

func mtools(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, prog, args...)
	// An image file has no geometry for mtools to check.
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	return runCmd(cmd)
}

// installExtlinux mounts the root partition through a loop device over
// just its byte range and installs extlinux into /boot/extlinux. The boot
// sector so written reads the partition's offset from gptmbr.bin's GPT
// handover at boot, and ldlinux.sys's sectors are recorded relative to the
// filesystem, so a device without partition table is enough (partition
// scanning of loop devices is not available everywhere). The mount and the
// device are released on every path.
func installExtlinux(ctx context.Context, work, img string) (err error) {
	out, err := exec.CommandContext(ctx, "losetup", "--find", "--show",
		"--offset", fmt.Sprint(rootStart), "--sizelimit", fmt.Sprint(rootSize), img).CombinedOutput()
	if err != nil {
		return fmt.Errorf("debimage: losetup: %w: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	defer func() {
		if derr := exec.Command("losetup", "-d", dev).Run(); derr != nil && err == nil {
			err = fmt.Errorf("debimage: detach %s: %w", dev, derr)
		}
	}()
	mnt := filepath.Join(work, "mnt")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	if err := run(ctx, "mount", "-t", "ext4", dev, mnt); err != nil {
		return err
	}
	defer func() {
		if uerr := exec.Command("umount", mnt).Run(); uerr != nil {
			exec.Command("umount", "-l", mnt).Run()
			if err == nil {
				err = fmt.Errorf("debimage: umount %s: %w", mnt, uerr)
			}
		}
	}()
	return run(ctx, "extlinux", "--install", filepath.Join(mnt, "boot", "extlinux"))
}

func writeMBR(img string) error {
	var code []byte
	var err error
	for _, p := range gptMBRPaths {
		if code, err = os.ReadFile(p); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("debimage: gptmbr.bin: %w", err)
	}
	if len(code) > 440 {
		return fmt.Errorf("debimage: gptmbr.bin is %d bytes, want at most 440", len(code))
	}
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(code, 0); err != nil {
		return fmt.Errorf("debimage: write MBR: %w", err)
	}
	return f.Close()
}
