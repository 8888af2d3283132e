package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/haven-dr/haven/internal/testenv"
)

// TestVaultCopyKilledResumedAndAttacked: `haven vault copy` from a file
// vault to S3 (versitygw) is SIGKILLed in the middle of a point, twice;
// each time the copy checks whole and lists only complete points, and a
// rerun finishes it. Then whoever holds the first vault deletes its
// points and damages a new pack: the copy keeps every point, copies the
// undamaged new one, and exits 7 naming what it did not copy.
func TestVaultCopyKilledResumedAndAttacked(t *testing.T) {
	dir := t.TempDir()
	endpoint, ak, sk := testenv.S3Server(t)
	vaultDir := filepath.Join(dir, "vault")
	src := []string{"HAVEN_VAULT=" + vaultDir, "HAVEN_PASSWORD=pw"}
	copyURL := fmt.Sprintf("s3://second/v?endpoint=%s&insecure=true", endpoint)
	dst := []string{"HAVEN_VAULT=" + copyURL, "HAVEN_PASSWORD=pw2", "AWS_ACCESS_KEY_ID=" + ak, "AWS_SECRET_ACCESS_KEY=" + sk}
	copyEnv := append(src, "HAVEN_TO_PASSWORD=pw2", "HAVEN_TO_AWS_ACCESS_KEY_ID="+ak, "HAVEN_TO_AWS_SECRET_ACCESS_KEY="+sk)
	mustHaven(t, src, "vault", "init")
	rng := rand.New(rand.NewPCG(3, 4))
	want := map[string]string{}
	for _, m := range []string{"a", "b", "c", "d"} {
		img := filepath.Join(dir, m+".img")
		randomFile(t, img, 12<<20, rng)
		mustHaven(t, src, "snapshot", "--machine", m, "--disk", "root="+img)
		want[m] = fileSHA(t, img)
	}

	// Two runs killed after their first point, at 4 MiB/s to S3.
	for round := range 2 {
		args := []string{"vault", "copy", "--to", copyURL, "--limit-upload", "4MiB"}
		if round == 0 {
			args = append(args, "--init")
		}
		if !killAfterFirstPoint(t, copyEnv, args...) {
			t.Fatalf("round %d: the copy finished before it was killed", round)
		}
		mustHaven(t, dst, "vault", "check", "--read-data")
		if n := len(copyPoints(t, dst)); n != round+1 {
			t.Fatalf("after kill %d the copy lists %d points, want %d", round, n, round+1)
		}
	}
	out := mustHaven(t, copyEnv, "vault", "copy", "--to", copyURL)
	if !strings.Contains(out, "copied 2 points (2 already there)") {
		t.Fatalf("resumed copy:\n%s", out)
	}
	restoreAll(t, dst, dir, want)

	// The attack on the first vault.
	if err := os.RemoveAll(filepath.Join(vaultDir, "points")); err != nil {
		t.Fatal(err)
	}
	before := packSet(t, vaultDir)
	img := filepath.Join(dir, "e.img")
	randomFile(t, img, 1<<20, rng)
	mustHaven(t, src, "snapshot", "--machine", "e", "--disk", "root="+img)
	for p := range packSet(t, vaultDir) {
		if !before[p] {
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o600)
		}
	}
	randomFile(t, img, 1<<20, rng)
	mustHaven(t, src, "snapshot", "--machine", "f", "--disk", "root="+img)
	want["f"] = fileSHA(t, img)
	r := haven(t, copyEnv, "vault", "copy", "--to", copyURL)
	if r.code != 7 || !strings.Contains(r.stdout, "NOT copied: 1 points") || !strings.Contains(r.stdout, "kept 4 points") ||
		!strings.Contains(r.stdout, "copied 1 points") {
		t.Fatalf("copy from the damaged vault: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	mustHaven(t, dst, "vault", "check", "--read-data")
	restoreAll(t, dst, dir, want)
	if n := len(copyPoints(t, dst)); n != 5 {
		t.Fatalf("the copy lists %d points, want 5", n)
	}
}

func randomFile(t *testing.T, path string, size int, rng *rand.Rand) {
	t.Helper()
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// killAfterFirstPoint runs haven, SIGKILLs it as soon as it reports its
// first point copied, and says whether it was killed before it finished.
func killAfterFirstPoint(t *testing.T, env []string, args ...string) bool {
	t.Helper()
	cmd := exec.Command(havenBin, args...)
	cmd.Env = append(baseEnv(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "[1/") {
			cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	return ok && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
}

func copyPoints(t *testing.T, env []string) []struct{ Machine, ID string } {
	t.Helper()
	var ps []struct{ Machine, ID string }
	if err := json.Unmarshal([]byte(mustHaven(t, env, "vault", "points", "--json")), &ps); err != nil {
		t.Fatal(err)
	}
	return ps
}

func restoreAll(t *testing.T, env []string, dir string, want map[string]string) {
	t.Helper()
	for _, p := range copyPoints(t, env) {
		out := filepath.Join(dir, "restored-"+p.ID)
		mustHaven(t, env, "restore", "--machine", p.Machine, "--point", p.ID, "--disk", "root", "--to", out)
		if fileSHA(t, out) != want[p.Machine] {
			t.Fatalf("point %s/%s does not restore from the copy bit-exact", p.Machine, p.ID)
		}
		os.Remove(out)
	}
}

func packSet(t *testing.T, vaultDir string) map[string]bool {
	t.Helper()
	ps, err := filepath.Glob(filepath.Join(vaultDir, "data", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ps)
	out := map[string]bool{}
	for _, p := range ps {
		out[p] = true
	}
	return out
}

// TestVaultCopyChain: file → Azure Blob (Azurite) → S3 (versitygw), a copy
// of a copy, each with its own password and credentials; every hop checks
// whole and restores bit-exact, and a second pass copies nothing.
func TestVaultCopyChain(t *testing.T) {
	dir := t.TempDir()
	azEndpoint, azAccount, azKey := testenv.Azurite(t)
	s3Endpoint, ak, sk := testenv.S3Server(t)
	file := []string{"HAVEN_VAULT=" + filepath.Join(dir, "vault"), "HAVEN_PASSWORD=pw"}
	azURL := fmt.Sprintf("azblob://second/v?endpoint=%s&account=%s", azEndpoint, azAccount)
	az := []string{"HAVEN_VAULT=" + azURL, "HAVEN_PASSWORD=pw2", "AZURE_STORAGE_KEY=" + azKey}
	s3URL := fmt.Sprintf("s3://third/v?endpoint=%s&insecure=true", s3Endpoint)
	s3 := []string{"HAVEN_VAULT=" + s3URL, "HAVEN_PASSWORD=pw3", "AWS_ACCESS_KEY_ID=" + ak, "AWS_SECRET_ACCESS_KEY=" + sk}
	mustHaven(t, file, "vault", "init")
	rng := rand.New(rand.NewPCG(5, 6))
	want := map[string]string{}
	for _, m := range []string{"a", "b"} {
		img := filepath.Join(dir, m+".img")
		randomFile(t, img, 3<<20, rng)
		mustHaven(t, file, "snapshot", "--machine", m, "--disk", "root="+img)
		want[m] = fileSHA(t, img)
	}
	toAz := append(file, "HAVEN_TO_PASSWORD=pw2", "HAVEN_TO_AZURE_STORAGE_KEY="+azKey)
	toS3 := append(az, "HAVEN_TO_PASSWORD=pw3", "HAVEN_TO_AWS_ACCESS_KEY_ID="+ak, "HAVEN_TO_AWS_SECRET_ACCESS_KEY="+sk)
	for _, hop := range []struct {
		env      []string
		to       string
		copy     []string
		toCopyOf string
	}{{toAz, azURL, az, "file"}, {toS3, s3URL, s3, "azblob"}} {
		out := mustHaven(t, hop.env, "vault", "copy", "--init", "--to", hop.to)
		if !strings.Contains(out, "copied 2 points (0 already there)") {
			t.Fatalf("copy from %s:\n%s", hop.toCopyOf, out)
		}
		if out := mustHaven(t, hop.env, "vault", "copy", "--to", hop.to); !strings.Contains(out, "copied 0 points (2 already there), 0 packs") {
			t.Fatalf("second pass from %s:\n%s", hop.toCopyOf, out)
		}
		mustHaven(t, hop.copy, "vault", "check", "--read-data")
		restoreAll(t, hop.copy, dir, want)
	}
}
