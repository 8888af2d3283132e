package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSnapshotKilledAtRandomMoments SIGKILLs 'haven snapshot' at many random
// moments. After every kill the vault must pass check, and every point that
// exists must restore bit-exact to the image it was taken from.
func TestSnapshotKilledAtRandomMoments(t *testing.T) {
	dir := t.TempDir()
	env := []string{"HAVEN_VAULT=" + filepath.Join(dir, "vault"), "HAVEN_PASSWORD=pw"}
	mustHaven(t, env, "vault", "init")
	img := filepath.Join(dir, "disk.img")
	rng := rand.New(rand.NewPCG(7, 7))
	f, _ := os.Create(img)
	buf := make([]byte, 48<<20)
	for i := range buf {
		buf[i] = byte(rng.Uint32() >> 24 & 0x3f) // half-compressible
	}
	f.Write(buf)
	f.Close()

	mustHaven(t, env, "snapshot", "--machine", "base", "--disk", "root="+img)
	want := map[string]string{"base": fileSHA(t, img)}
	// Measure one uninterrupted incremental run, to spread the kills over
	// the life of such a run (start-up, reading, uploading, commit).
	scribble(t, img, rng)
	start := time.Now()
	mustHaven(t, env, "snapshot", "--machine", "incr", "--disk", "root="+img)
	full := time.Since(start)
	want["incr"] = fileSHA(t, img)

	// Kill moments are uniform over [0, 2*span). Run times vary with the
	// machine's load, so span grows after a kill and shrinks after a run
	// that finished, settling where about half the runs are killed: both
	// outcomes must leave a sound vault.
	const rounds = 20
	killed, span := 0, full
	for i := range rounds {
		scribble(t, img, rng)
		machine := fmt.Sprintf("k%d", i)
		want[machine] = fileSHA(t, img)
		delay := time.Duration(rng.Int64N(int64(span) * 2))
		if killSnapshot(t, env, machine, img, delay) {
			killed++
			span = min(span*5/4, 20*time.Second)
		} else {
			span = span * 3 / 4
		}
		mustHaven(t, env, "vault", "check")
	}
	if killed < rounds/4 {
		t.Fatalf("only %d of %d snapshots were killed before finishing: test did not test", killed, rounds)
	}
	mustHaven(t, env, "vault", "check", "--read-data")
	var points []struct{ Machine, ID string }
	json.Unmarshal([]byte(mustHaven(t, env, "vault", "points", "--json")), &points)
	if len(points) < 1 {
		t.Fatal("no points listed")
	}
	for _, p := range points {
		out := filepath.Join(dir, "restored-"+p.ID)
		mustHaven(t, env, "restore", "--machine", p.Machine, "--point", p.ID, "--disk", "root", "--to", out)
		if fileSHA(t, out) != want[p.Machine] {
			t.Fatalf("point %s/%s does not restore bit-exact", p.Machine, p.ID)
		}
		os.Remove(out)
	}
	t.Logf("%d of %d snapshots killed; %d points restored bit-exact", killed, rounds, len(points))
	// A new snapshot after all the kills still works and dedupes.
	mustHaven(t, env, "snapshot", "--machine", "after", "--disk", "root="+img)
	mustHaven(t, env, "vault", "check", "--read-data")
}

// killSnapshot starts a snapshot and SIGKILLs it after delay. It reports
// whether the process was killed (rather than finishing first).
func killSnapshot(t *testing.T, env []string, machine, img string, delay time.Duration) bool {
	t.Helper()
	cmd := exec.Command(havenBin, "snapshot", "--machine", machine, "--disk", "root="+img)
	cmd.Env = append([]string{"HAVEN_TEST_KDF=fast"}, env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("snapshot failed on its own: %v", err)
		}
		return false
	case <-time.After(delay):
		cmd.Process.Signal(syscall.SIGKILL)
		err := <-done
		return err != nil
	}
}

// scribble overwrites a few scattered 4 KiB blocks and one larger run.
func scribble(t *testing.T, path string, rng *rand.Rand) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	blk := make([]byte, 4096)
	for range 64 {
		for i := range blk {
			blk[i] = byte(rng.Uint32())
		}
		f.WriteAt(blk, rng.Int64N(fi.Size()/4096)*4096)
	}
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	f.WriteAt(big, rng.Int64N(fi.Size()-int64(len(big))))
}

func fileSHA(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}
