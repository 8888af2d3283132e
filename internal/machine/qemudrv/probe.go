package qemudrv

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// probeMarker is what the probe boot sector writes to the debug port.
const probeMarker = "haven-probe-ok"

// probeCode is a boot sector's code that does what stock boot loaders and
// kernels do early and some nested KVM hosts cannot emulate (the x87 FPU,
// protected mode with caching off, iret), then writes probeMarker to port
// 0x402 and halts. Assembled with GNU as --32 from:
//
//	.code16
//	.globl _start
//	_start:
//	  cli
//	  cld
//	  xor %ax, %ax
//	  mov %ax, %ds
//	  mov %ax, %ss
//	  mov $0x7c00, %sp
//	  fninit
//	  lgdt 0x7c00 + (gdtr - _start)
//	  mov %cr0, %eax
//	  or $0x40000023, %eax
//	  mov %eax, %cr0
//	  ljmpl $0x08, $(0x7c00 + (pm - _start))
//	.code32
//	pm:
//	  mov $0x10, %ax
//	  mov %ax, %ds
//	  mov %ax, %es
//	  mov %ax, %ss
//	  mov $0x7c00, %esp
//	  fwait
//	  fninit
//	  pushfl
//	  pushl $0x08
//	  pushl $(0x7c00 + (after - _start))
//	  iretl
//	after:
//	  mov $(0x7c00 + (msg - _start)), %esi
//	  mov $0x402, %dx
//	1: lodsb
//	  test %al, %al
//	  jz 2f
//	  outb %al, %dx
//	  jmp 1b
//	2: hlt
//	  jmp 2b
//	.align 8
//	gdt:
//	  .quad 0
//	  .quad 0x00cf9a000000ffff
//	  .quad 0x00cf92000000ffff
//	gdtr:
//	  .word 23
//	  .long 0x7c00 + (gdt - _start)
//	msg:
//	  .asciz "haven-probe-ok\n"
const probeCode = "fafc31c08ed88ed0bc007cdbe30f0116707c0f20c0660d230000400f22c066ea267c0000080066b810008ed88ec08ed0bc007c00009bdbe39c6a0868417c0000cfbe767c000066ba0204ac84c07403eeebf8f4ebfd8d76000000000000000000ffff0000009acf00ffff00000092cf001700587c0000686176656e2d70726f62652d6f6b0a00"

// probeBootSector is a 1 MiB disk booting probeCode.
func probeBootSector() []byte {
	code, _ := hex.DecodeString(probeCode)
	b := make([]byte, 1<<20) // SeaBIOS ignores disks smaller than a cylinder
	copy(b, code)
	b[510], b[511] = 0x55, 0xaa
	return b
}

// ProbeFirmware proves the firmware boots under accel, with no boot files
// and no guest OS. SeaBIOS must load and run a boot sector from a
// virtio-blk disk on the machine type the driver uses; OVMF must get as
// far as its boot manager. Seeing the firmware's banner is not enough:
// on some nested hosts it prints, then KVM fails to emulate an
// instruction of the boot loader (QEMU reports "KVM internal error").
func (d *Driver) ProbeFirmware(ctx context.Context, accel, firmware string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "hvprobe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	args := []string{"-accel", accel, "-machine", machineType, "-m", "256", "-nodefaults",
		"-no-user-config", "-display", "none"}
	var marker string
	switch firmware {
	case "bios":
		disk := filepath.Join(dir, "probe.img")
		if err := os.WriteFile(disk, probeBootSector(), 0o600); err != nil {
			return err
		}
		args = append(args, "-chardev", "stdio,id=dbg", "-device", "isa-debugcon,iobase=0x402,chardev=dbg",
			"-drive", "if=none,id=d0,format=raw,readonly=on,file="+escape(disk),
			"-device", "virtio-blk-pci,drive=d0,bootindex=0")
		marker = probeMarker
	case "uefi":
		fw, err := d.ovmf()
		if err != nil {
			return err
		}
		vars := filepath.Join(dir, varsFile)
		if err := copyFile(fw.Vars, vars, 0o600); err != nil {
			return err
		}
		args = append(args, "-serial", "stdio",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escape(fw.Code),
			"-drive", "if=pflash,format=raw,unit=1,file="+escape(vars))
		marker = "BdsDxe: "
	default:
		return fmt.Errorf("qemu: unknown firmware %q", firmware)
	}
	return runUntil(ctx, exec.CommandContext(ctx, d.qemu(), args...), marker)
}

// runUntil runs cmd until marker appears on its standard output (success)
// or it fails: exits, reports a KVM internal error (QEMU then pauses the
// VM rather than exiting), or ctx ends.
func runUntil(ctx context.Context, cmd *exec.Cmd, marker string) error {
	found := make(chan error, 2)
	var out, errOut watcher
	out.want, out.found = []byte(marker), found
	errOut.want, errOut.found, errOut.fail = []byte("KVM internal error"), found, true
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = time.Second // a child holding the pipes must not hold us
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-found:
	case werr := <-exited:
		return fmt.Errorf("qemu exited (%v): %s", werr, errOut.text())
	case <-ctx.Done():
		err = fmt.Errorf("no %q: %w", marker, ctx.Err())
	}
	cmd.Process.Kill() // firmware waits for input or a boot disk forever
	<-exited
	return err
}

// watcher is an io.Writer that reports when it has seen want.
type watcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  []byte
	fail  bool
	found chan<- error
	done  bool
}

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() < 1<<20 {
		w.buf.Write(p)
	}
	if !w.done && bytes.Contains(w.buf.Bytes(), w.want) {
		w.done = true
		var err error
		if w.fail {
			err = errors.New(w.buf.String())
		}
		w.found <- err
	}
	return len(p), nil
}

func (w *watcher) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

var _ io.Writer = (*watcher)(nil)
