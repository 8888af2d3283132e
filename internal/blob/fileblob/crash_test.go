package fileblob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/fileblob"
)

// childEnv makes the test binary act as a writer that is killed mid-Put.
const childEnv = "HV_FILEBLOB_WRITER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		writeForever(dir)
	}
	os.Exit(m.Run())
}

// writeForever puts self-checking objects (sha256 of the rest, then random
// data of 1 B to 4 MiB) until it is killed.
func writeForever(dir string) {
	b, err := fileblob.New(dir)
	if err != nil {
		panic(err)
	}
	for i := 0; ; i++ {
		body := make([]byte, 1+rand.IntN(4<<20))
		for j := 0; j < len(body); j += 4096 {
			body[j] = byte(rand.Uint32()) // sparse randomness is enough to tell versions apart
		}
		sum := sha256.Sum256(body)
		name := fmt.Sprintf("data/%02d/obj-%d", i%3, i%7)
		if err := b.Put(context.Background(), name, append(sum[:], body...)); err != nil {
			panic(err)
		}
		fmt.Println(name) // lets the parent know at least one Put finished
	}
}

// TestKilledWriter kills a writing process at random moments and checks
// that every object visible under its final name is complete.
func TestKilledWriter(t *testing.T) {
	dir := t.TempDir()
	for round := range 12 {
		killWriter(t, dir, time.Duration(5+rand.IntN(150))*time.Millisecond)
		verifyObjects(t, dir, round)
	}
}

func killWriter(t *testing.T, dir string, after time.Duration) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Args[0] = "hv-fileblob-writer" // named like everything a test starts
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(after)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if strings.Contains(out.String(), "panic") {
		t.Fatalf("writer failed: %s", out.String())
	}
}

func verifyObjects(t *testing.T, dir string, round int) {
	t.Helper()
	b, err := fileblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n := 0
	err = b.List(ctx, "", func(fi blob.Info) error {
		n++
		if strings.Contains(fi.Name, ".hvtmp-") {
			return fmt.Errorf("temporary file listed: %s", fi.Name)
		}
		data, err := b.Get(ctx, fi.Name, 0, -1)
		if err != nil {
			return err
		}
		if len(data) < sha256.Size || sha256.Sum256(data[sha256.Size:]) != [32]byte(data[:sha256.Size]) {
			return fmt.Errorf("round %d: %s is partial or corrupt (%d bytes)", round, fi.Name, len(data))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "data", "*", ".hvtmp-*"))
	t.Logf("round %d: %d complete objects, %d abandoned temp files (ignored)", round, n, len(tmps))
}
