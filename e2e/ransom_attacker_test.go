package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/blob/s3blob"
	"github.com/haven-dr/haven/internal/testenv"
)

// attackVault is one append-only vault the attacker test runs against: the
// primary's environment (vault URL, agent credential, password: all the
// attacker gets) and an operator's with the admin credential.
type attackVault struct {
	agentEnv, adminEnv []string
	// overwriteLands: the service accepts an overwrite with the agent's
	// credential as a new version and keeps the original (S3 versioning);
	// Haven must go on reading the original.
	overwriteLands bool
	// locked: everything written, the attacker's garbage too, is under an
	// object lock the admin cannot lift either before it expires.
	locked bool
}

// attackBackends are the storage services the attacker test covers.
var attackBackends = []struct {
	name  string
	start func(t *testing.T) attackVault
}{
	{"vault-serve", startServedVault},
	{"s3-object-lock", startLockedS3Vault},
	{"azurite-sas", startAzuriteSASVault},
}

// startLockedS3Vault: a versitygw bucket prepared by prepare-agent with
// COMPLIANCE locks for an hour (the whole test runs inside the lock).
func startLockedS3Vault(t *testing.T) attackVault {
	l := testenv.LockedS3Bucket(t, s3blob.LockCompliance, time.Hour)
	common := []string{"HAVEN_VAULT=" + l.URL, "HAVEN_PASSWORD=primary-pw"}
	return attackVault{agentEnv: append(l.Agent.Environ(), common...), adminEnv: append(l.Admin.Environ(), common...),
		overwriteLands: true, locked: true}
}

// startAzuriteSASVault: an Azurite container with the agent's SAS
// (create/read/list) from prepare-agent; the admin holds the account key.
// Azurite has no immutability policies, so the admin can delete at once.
func startAzuriteSASVault(t *testing.T) attackVault {
	a := testenv.AzuriteAgentSAS(t)
	common := []string{"HAVEN_VAULT=" + a.URL, "HAVEN_PASSWORD=primary-pw"}
	return attackVault{agentEnv: append(a.AgentEnviron(), common...), adminEnv: append(a.AdminEnviron(), common...)}
}

// servedVault is a `haven vault serve` process on a loopback port.
type servedVault struct {
	dir, tlsDir, agentTok, adminTok string
	addr                            string
	cmd                             *exec.Cmd
}

func newServedVault(t *testing.T) *servedVault {
	d := t.TempDir()
	s := &servedVault{dir: filepath.Join(d, "store"), tlsDir: filepath.Join(d, "tls"),
		agentTok: filepath.Join(d, "agent.token"), adminTok: filepath.Join(d, "admin.token"),
		addr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	s.start(t)
	t.Cleanup(s.kill)
	return s
}

// start runs the server and waits until it accepts connections.
func (s *servedVault) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(havenBin, "vault", "serve", "--dir", s.dir, "--listen", s.addr, "--tls-dir", s.tlsDir,
		"--agent-token-file", s.agentTok, "--admin-token-file", s.adminTok)
	s.cmd.Env = baseEnv()
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", s.addr); err == nil {
			c.Close()
			return
		}
		if i > 500 {
			t.Fatalf("haven vault serve did not listen on %s", s.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *servedVault) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		s.cmd.Wait()
	}
}

func (s *servedVault) env(tokenFile string) []string {
	return []string{"HAVEN_VAULT=https://" + s.addr + "/site-a?ca=" + filepath.Join(s.tlsDir, "ca.crt"),
		"HAVEN_VAULT_TOKEN_FILE=" + tokenFile, "HAVEN_PASSWORD=primary-pw"}
}

func startServedVault(t *testing.T) attackVault {
	s := newServedVault(t)
	return attackVault{agentEnv: s.env(s.agentTok), adminEnv: s.env(s.adminTok)}
}

// openEnv opens the vault's storage directly, as an attacker with env's
// credentials would, bypassing Haven's vault code entirely.
func openEnv(t *testing.T, env []string) blob.Backend {
	t.Helper()
	b, err := blobopen.OpenEnv(context.Background(), envValue(env, "HAVEN_VAULT"), blob.Limits{}, func(k string) string { return envValue(env, k) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// envValue is k's value in env, the last one when k is set twice (as
// exec does).
func envValue(env []string, k string) string {
	v := ""
	for _, kv := range env {
		if name, val, _ := strings.Cut(kv, "="); name == k {
			v = val
		}
	}
	return v
}

// inventory is every object's content hash.
func inventory(t *testing.T, b blob.Backend) map[string]string {
	t.Helper()
	out := map[string]string{}
	ctx := context.Background()
	err := b.List(ctx, "", func(fi blob.Info) error {
		data, err := b.Get(ctx, fi.Name, 0, -1)
		sum := sha256.Sum256(data)
		out[fi.Name] = hex.EncodeToString(sum[:])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAttackerHoldingThePrimaryCannotDestroyPoints: the attacker has the
// primary's agent configuration, storage credential and vault password. It
// prunes, removes keys, deletes and overwrites every object through the
// storage API, and writes garbage under new names. Afterwards every object
// written before the attack is there, unchanged; check reports nothing but
// the attacker's own objects; every point restores bit-exact.
func TestAttackerHoldingThePrimaryCannotDestroyPoints(t *testing.T) {
	for _, be := range attackBackends {
		t.Run(be.name, func(t *testing.T) {
			v := be.start(t)
			want := protect(t, v.agentEnv)
			admin := openEnv(t, v.adminEnv)
			before := inventory(t, admin)
			planted := attack(t, v)
			after := inventory(t, admin)
			for name, sum := range before {
				if after[name] != sum {
					t.Errorf("object %s changed or vanished in the attack", name)
				}
			}
			verifyAfterAttack(t, v, want, planted)
		})
	}
}

// protect is the primary at work: init, then three points of a changing
// disk, all with the agent's credential. It returns point id -> image hash.
func protect(t *testing.T, env []string) map[string]string {
	mustHaven(t, env, "vault", "init")
	img := filepath.Join(t.TempDir(), "db.img")
	rng := rand.New(rand.NewPCG(17, 17))
	f, _ := os.Create(img)
	buf := make([]byte, 24<<20)
	for i := range buf {
		buf[i] = byte(rng.Uint32() >> 24 & 0x3f)
	}
	f.Write(buf)
	f.Close()
	want := map[string]string{}
	for i := range 3 {
		if i > 0 {
			scribble(t, img, rng)
		}
		mustHaven(t, env, "snapshot", "--machine", "db", "--disk", "root="+img)
		want[latestPoint(t, env)] = fileSHA(t, img)
	}
	return want
}

func latestPoint(t *testing.T, env []string) string {
	t.Helper()
	var ps []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(mustHaven(t, env, "vault", "points", "--machine", "db", "--json")), &ps); err != nil || len(ps) == 0 {
		t.Fatalf("points: %v %v", ps, err)
	}
	return ps[len(ps)-1].ID
}

// attack does everything the primary's credentials allow and returns the
// names of the garbage objects it managed to create.
func attack(t *testing.T, v attackVault) []string {
	return plantGarbage(t, v, attackObjects(t, v))
}

// attackObjects prunes, re-keys, and deletes and overwrites every object
// with the primary's credentials; it returns the objects' names.
func attackObjects(t *testing.T, v attackVault) []string {
	ctx := context.Background()
	env := v.agentEnv
	if r := haven(t, env, "vault", "prune", "--keep-last", "1"); r.code == 0 {
		t.Errorf("prune with the primary's credential succeeded:\n%s", r.stdout)
	}
	var keys []struct {
		ID string `json:"id"`
	}
	json.Unmarshal([]byte(mustHaven(t, env, "vault", "key", "list", "--json")), &keys)
	// Re-key: a password of the attacker's own is only one more way in
	// (the attacker has the primary's already); removing one is refused.
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("attacker-pw"), 0o600)
	mustHaven(t, env, "vault", "key", "add", "--new-password-file", pw)
	for _, k := range keys {
		if r := haven(t, append(env, "HAVEN_PASSWORD=attacker-pw"), "vault", "key", "remove", k.ID); r.code == 0 {
			t.Errorf("key remove %s with the primary's credential succeeded", k.ID)
		}
	}
	b := openEnv(t, env)
	var names []string
	b.List(ctx, "", func(fi blob.Info) error { names = append(names, fi.Name); return nil })
	for _, n := range names {
		// The refusal is the service's (403 from S3 and Azure, ErrAppendOnly
		// from vault serve); whether anything changed is checked on the
		// inventory afterwards.
		if err := b.Delete(ctx, n); err == nil {
			t.Errorf("delete %s with the agent's credential succeeded", n)
		}
		err := b.Put(ctx, n, []byte("encrypted by ransomware"))
		if v.overwriteLands && err != nil {
			t.Errorf("overwrite %s: %v (S3 versioning accepts it as a new version)", n, err)
		} else if !v.overwriteLands && err == nil {
			t.Errorf("overwrite %s with the agent's credential succeeded", n)
		}
	}
	return names
}

// plantGarbage writes garbage with the agent's credential beside the
// vault's objects (names) and returns what it wrote.
func plantGarbage(t *testing.T, v attackVault, names []string) []string {
	ctx := context.Background()
	b := openEnv(t, v.agentEnv)
	// Garbage under new names, where it hurts most: a "newest" point in
	// the machine's own directory, an index object, a pack, a deletion
	// mark, a lock, a key file.
	machineDir := ""
	for _, n := range names {
		if strings.HasPrefix(n, "points/") {
			machineDir = filepath.Dir(n)
		}
	}
	var planted []string
	for _, n := range []string{"data/00/" + strings.Repeat("0", 64), "index/" + strings.Repeat("e", 32),
		machineDir + "/20990101T000000.000Z-00000000", "locks/" + strings.Repeat("1", 32) + "/0000000001",
		"garbage/" + strings.Repeat("9", 32), "keys/" + strings.Repeat("7", 16)} {
		if err := b.Put(ctx, n, []byte("garbage")); err != nil {
			t.Fatalf("plant %s: %v", n, err)
		}
		planted = append(planted, n)
	}
	return planted
}

// verifyAfterAttack: the operator checks with the admin credential: check
// names every planted object and nothing else, every point (and "latest")
// restores bit-exact, and once the operator has deleted the planted objects
// prune and check are clean again.
func verifyAfterAttack(t *testing.T, v attackVault, want map[string]string, planted []string) {
	env := v.adminEnv
	r := haven(t, env, "vault", "check", "--read-data")
	reported := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !strings.HasPrefix(line, "error:") {
			continue
		}
		name := reportedName(line, planted)
		if name == "" {
			t.Errorf("check reports damage the attacker did not plant: %s", line)
		}
		reported[name] = true
	}
	for _, n := range planted {
		if !reported[n] {
			t.Errorf("check does not report the planted %s:\n%s", n, r.stdout)
		}
	}
	newest := ""
	for id, sum := range want {
		restoreSHA(t, env, id, sum)
		newest = max(newest, id)
	}
	restoreSHA(t, env, "latest", want[newest])
	if pts := mustHaven(t, env, "vault", "points", "--machine", "db"); strings.Count(pts, "\n") < len(want) || strings.Contains(pts, "2099") {
		t.Errorf("points after the attack:\n%s", pts)
	}
	admin := openEnv(t, env)
	if v.locked {
		verifyLockedCleanup(t, v, admin, want, planted)
		return
	}
	for _, n := range planted {
		if err := admin.Delete(context.Background(), n); err != nil {
			t.Fatalf("operator removes %s: %v", n, err)
		}
	}
	mustHaven(t, env, "vault", "prune", "--keep-last", "1")
	mustHaven(t, env, "vault", "check", "--read-data")
	restoreSHA(t, env, newest, want[newest])
}

func restoreSHA(t *testing.T, env []string, point, sum string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.img")
	mustHaven(t, env, "restore", "--machine", "db", "--point", point, "--disk", "root", "--to", out)
	if got := fileSHA(t, out); got != sum {
		t.Errorf("point %s restores to %s, want %s", point, got, sum)
	}
}

// reportedName is the planted object a check line names, or "".
func reportedName(line string, planted []string) string {
	for _, n := range planted {
		if strings.Contains(line, n) {
			return n
		}
	}
	return ""
}

// verifyLockedCleanup: under Object Lock the operator cannot remove the
// attacker's garbage either until its lock expires (the price of a lock
// nobody can lift); each delete is ErrRetained and nothing goes. A prune
// meanwhile refuses to work from an index holding the planted
// unauthenticated index object and removes nothing; every point still
// restores. Prune's handling of locks on a clean vault is
// TestPruneWaitsForObjectLock (internal/vault).
func verifyLockedCleanup(t *testing.T, v attackVault, admin blob.Backend, want map[string]string, planted []string) {
	before := inventory(t, admin)
	for _, n := range planted {
		if err := admin.Delete(context.Background(), n); !errors.Is(err, blob.ErrRetained) {
			t.Errorf("operator deletes the locked %s: %v, want ErrRetained", n, err)
		}
	}
	if r := haven(t, v.adminEnv, "vault", "prune", "--keep-last", "1"); r.code == 0 {
		t.Errorf("prune over an attacker's unauthenticated index object succeeded:\n%s", r.stdout)
	}
	after := inventory(t, admin)
	for name, sum := range before {
		if after[name] != sum {
			t.Errorf("object %s changed or vanished in the operator's cleanup", name)
		}
	}
	for id, sum := range want {
		restoreSHA(t, v.adminEnv, id, sum)
	}
}
