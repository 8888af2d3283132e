package nbd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/testenv"
)

// serve exports image read-only with a real qemu-nbd on a unix socket.
func serve(t *testing.T, image, format string) string {
	t.Helper()
	bin := testenv.LookPath(t, "qemu-nbd")
	sock := filepath.Join(t.TempDir(), "hv.sock")
	cmd := exec.Command(bin, "--persistent", "--read-only", "--shared=4", "-x", "hv", "-f", format, "-k", sock, image)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 200 {
		if _, err := os.Stat(sock); err == nil {
			return sock
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("qemu-nbd did not create its socket")
	return ""
}

// sparseImage writes 1 MiB of random data at 1 MiB and 64 KiB at 5 MiB of
// an 8 MiB sparse file and returns its path and contents.
func sparseImage(t *testing.T) (string, []byte) {
	t.Helper()
	want := make([]byte, 8<<20)
	rand.Read(want[1<<20 : 2<<20])
	rand.Read(want[5<<20 : 5<<20+64<<10])
	p := filepath.Join(t.TempDir(), "disk.raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Truncate(int64(len(want)))
	f.WriteAt(want[1<<20:2<<20], 1<<20)
	f.WriteAt(want[5<<20:5<<20+64<<10], 5<<20)
	return p, want
}

func TestReadAndAllocationQemuNBD(t *testing.T) {
	raw, want := sparseImage(t)
	qcow := filepath.Join(t.TempDir(), "disk.qcow2")
	img := testenv.LookPath(t, "qemu-img")
	if out, err := exec.Command(img, "convert", "-f", "raw", "-O", "qcow2", raw, qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	for _, tc := range []struct{ image, format string }{{raw, "raw"}, {qcow, "qcow2"}} {
		t.Run(tc.format, func(t *testing.T) {
			ctx := context.Background()
			c, err := Dial(ctx, serve(t, tc.image, tc.format), Options{Export: "hv", Contexts: []string{BaseAllocation}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Size() != int64(len(want)) || !c.ReadOnly() {
				t.Fatalf("size %d read-only %v, want %d true", c.Size(), c.ReadOnly(), len(want))
			}
			got := make([]byte, len(want))
			// Odd sizes and offsets: reads need not be aligned.
			for off := 0; off < len(got); {
				n := min(len(got)-off, 3<<20+517)
				if _, err := c.ReadAt(got[off:off+n], int64(off)); err != nil {
					t.Fatal(err)
				}
				off += n
			}
			if !bytes.Equal(got, want) {
				t.Fatal("read differs from the image")
			}
			m, err := c.Map(ctx)
			if err != nil {
				t.Fatal(err)
			}
			checkAllocation(t, m[BaseAllocation], want)
			if _, err := c.ReadAt(make([]byte, 10), c.Size()+1); err == nil {
				t.Fatal("read past the end succeeded")
			}
		})
	}
}

// checkAllocation: extents tile the disk, every zero-flagged byte is zero,
// and the data regions are not flagged zero.
func checkAllocation(t *testing.T, es []Extent, want []byte) {
	t.Helper()
	pos, zeroBytes := int64(0), int64(0)
	for _, e := range es {
		if e.Offset != pos {
			t.Fatalf("extent at %d, want %d", e.Offset, pos)
		}
		if e.Flags&StateZero != 0 {
			if !bytes.Equal(want[e.Offset:e.Offset+e.Length], make([]byte, e.Length)) {
				t.Fatalf("extent %+v flagged zero holds data", e)
			}
			zeroBytes += e.Length
		}
		pos += e.Length
	}
	if pos != int64(len(want)) {
		t.Fatalf("extents cover %d of %d bytes", pos, len(want))
	}
	if data := int64(1<<20 + 64<<10); zeroBytes != int64(len(want))-data {
		t.Fatalf("%d bytes flagged zero, want %d", zeroBytes, int64(len(want))-data)
	}
}

func TestUnknownExportAndContext(t *testing.T) {
	raw, _ := sparseImage(t)
	sock := serve(t, raw, "raw")
	ctx := context.Background()
	if _, err := Dial(ctx, sock, Options{Export: "nope"}); !errors.Is(err, ErrServer) {
		t.Fatalf("unknown export: %v, want ErrServer", err)
	}
	_, err := Dial(ctx, sock, Options{Export: "hv", Contexts: []string{DirtyPrefix + "nope"}})
	if !errors.Is(err, ErrServer) {
		t.Fatalf("unknown bitmap: %v, want ErrServer", err)
	}
	c, err := Dial(ctx, sock, Options{Export: "hv"}) // the server still serves after refusals
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.ReadAt(make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}
