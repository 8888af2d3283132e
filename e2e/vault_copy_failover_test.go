package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/testenv"
	"github.com/haven-dr/haven/internal/vault"
)

// TestFailoverFromCopyOnS3: the agent writes into a file vault; the server
// keeps a second vault on S3 (versitygw) current while it does; then the
// primary site burns and the first vault's directory is removed, and a
// server pointed at the copy alone (--use-copy) runs a test failover and
// then fails over from it. The
// machines come up from the copy's newest points, whose disks restore from
// the copy byte for byte as they did from the first vault.
func TestFailoverFromCopyOnS3(t *testing.T) {
	s := newDRSite(t)
	ctx := context.Background()
	endpoint, ak, sk := testenv.S3Server(t)
	copyURL := fmt.Sprintf("s3://offsite/haven?endpoint=%s&insecure=true", endpoint)
	copyPw := s.write("offsite.password", "offsite horse\n")
	s.apply()
	s.waitPoints(1)

	// The operator makes the second vault with a first copy.
	r := haven(t, append(s.env, "HAVEN_TO_AWS_ACCESS_KEY_ID="+ak, "HAVEN_TO_AWS_SECRET_ACCESS_KEY="+sk),
		"vault", "copy", "--init", "--from", s.vaultURL, "--to", copyURL, "--to-password-file", copyPw)
	if r.code != 0 || !strings.Contains(r.stderr, "created vault") || !strings.Contains(r.stdout, "copied ") {
		t.Fatalf("vault copy --init: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	// From now on the server keeps it current.
	s.kill("server", syscall.SIGTERM)
	s.env = append(s.env, "OFFSITE_AWS_ACCESS_KEY_ID="+ak, "OFFSITE_AWS_SECRET_ACCESS_KEY="+sk)
	s.serverExtra = fmt.Sprintf("copies:\n  - name: offsite\n    vault: %s\n    password_file: %s\n    env_prefix: OFFSITE_\n    interval: 1s\n    max_lag: 5m\n",
		copyURL, copyPw)
	s.startServer()
	s.waitNewPoint(t)
	s.waitCopyCurrent(time.Now())
	if st := mustHaven(t, s.serverEnv(), "status"); !strings.Contains(st, "copy offsite ("+copyURL+"): lag 0s") {
		t.Errorf("haven status does not show the current copy:\n%s", st)
	}

	// The primary site burns; the copy takes the last points the agent
	// wrote, then the first vault is destroyed.
	s.disaster(t)
	s.waitCopyCurrent(time.Now())
	cp := s.openCopy(ctx, copyURL, ak, sk)
	newest := map[string]*vault.Point{}
	first := map[string]string{}
	for _, m := range []string{"db", "web"} {
		p, err := cp.FindPoint(ctx, m, "latest")
		if err != nil {
			t.Fatal(err)
		}
		newest[m] = p
		first[m] = filepath.Join(s.dir, m+"-from-first.img")
		mustHaven(t, s.env, "restore", "--machine", m, "--point", p.ID, "--disk", "root", "--to", first[m])
	}
	s.kill("server", syscall.SIGTERM)
	if err := os.RemoveAll(strings.TrimPrefix(s.vaultURL, "file://")); err != nil {
		t.Fatal(err)
	}
	if r := haven(t, s.env, "vault", "points"); r.code != 3 {
		t.Fatalf("the first vault is still there: exit %d %s", r.code, r.stderr)
	}

	s.startServer("--use-copy", "offsite")
	trep, r := s.runJob("failover", "test", "--plan", "shop")
	if r.code != 0 || trep.State != string(store.Succeeded) {
		t.Fatalf("test failover from the copy: exit %d %s: %s\n%s", r.code, trep.State, trep.Error, s.log("server"))
	}
	if crep, r := s.runJob("failover", "cleanup", "--plan", "shop"); r.code != 0 || crep.State != string(store.Succeeded) {
		t.Fatalf("test cleanup: exit %d %s: %s", r.code, crep.State, crep.Error)
	}
	rep, r := s.runJob("failover", "unplanned", "--plan", "shop")
	if r.code != 0 || rep.State != string(store.Succeeded) {
		t.Fatalf("failover from the copy: exit %d %s: %s\n%s", r.code, rep.State, rep.Error, s.log("server"))
	}
	for _, x := range []*orchestrator.Report{trep, rep} {
		if len(x.Points) != 2 {
			t.Errorf("%s report points: %+v", x.Type, x.Points)
		}
		for _, pr := range x.Points {
			if want := newest[pr.Machine]; want == nil || pr.Point != want.ID {
				t.Errorf("%s: %s got point %s, the copy's newest is %v", x.Type, pr.Machine, pr.Point, want)
			}
		}
	}
	if err := s.expectDNS("10.2.0.20"); err != nil {
		t.Fatal(err)
	}
	if out, err := s.http(s.inet, "GET", "http://10.2.0.20/", ""); err != nil || !strings.Contains(out, "hello from web") {
		t.Fatalf("recovered web through the customers' network: %q %v", out, err)
	}
	copyEnv := []string{"HAVEN_VAULT=" + copyURL, "HAVEN_PASSWORD=offsite horse", "AWS_ACCESS_KEY_ID=" + ak, "AWS_SECRET_ACCESS_KEY=" + sk}
	for m, p := range newest {
		out := filepath.Join(s.dir, m+"-from-copy.img")
		mustHaven(t, copyEnv, "restore", "--machine", m, "--point", p.ID, "--disk", "root", "--to", out)
		if fileSHA(t, out) != fileSHA(t, first[m]) {
			t.Errorf("%s: point %s restores differently from the copy", m, p.ID)
		}
	}
}

// waitCopyCurrent waits until a copy run that started after since has
// worked and left no lag.
func (s *drSite) waitCopyCurrent(since time.Time) {
	s.eventually(2*time.Minute, "copy current", func() error {
		st, err := s.client.Status(context.Background())
		if err != nil {
			return err
		}
		var c *api.CopyStatus
		for i := range st.Copies {
			c = &st.Copies[i]
		}
		switch {
		case c == nil:
			return fmt.Errorf("no copy in status")
		case c.Error != "":
			return fmt.Errorf("copy failing: %s", c.Error)
		case c.LastSuccess == nil || c.LastSuccess.Before(since) || c.LagSeconds == nil || *c.LagSeconds != 0:
			return fmt.Errorf("copy %+v", c)
		}
		return nil
	})
}

func (s *drSite) openCopy(ctx context.Context, url, ak, sk string) *vault.Vault {
	env := map[string]string{"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk}
	be, err := blobopen.OpenEnv(ctx, url, blob.DefaultLimits(), func(k string) string { return env[k] })
	s.must(err)
	v, err := vault.Open(ctx, be, "offsite horse", vault.Options{})
	s.must(err)
	s.t.Cleanup(func() { v.Close() })
	return v
}
