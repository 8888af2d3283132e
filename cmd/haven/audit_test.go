package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/servertest"
	"github.com/haven-dr/haven/internal/store"
	"github.com/haven-dr/haven/internal/vault"
)

// TestAuditTLSAndRotateCLI: `haven audit` reaches a server in tls mode
// auto over https with --ca-file (and not without it), and `haven server
// token rotate` replaces the admin token of the running server.
func TestAuditTLSAndRotateCLI(t *testing.T) {
	dir := t.TempDir()
	be, err := fileblob.New(filepath.Join(dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(context.Background(), be, "pw", vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte("pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "server.yaml")
	yml := "listen: 127.0.0.1:0\nstate_dir: " + filepath.Join(dir, "state") + "\nvault: file://" + filepath.Join(dir, "vault") +
		"\npassword_file: " + filepath.Join(dir, "password") + "\nstandby: false\ntls: {mode: auto}\n"
	if err := os.WriteFile(cfgFile, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := server.LoadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	r := servertest.Start(t, cfg, server.Options{})
	ln := r.Addr
	url := "https://" + ln
	ca := filepath.Join(cfg.StateDir, "tls", "ca.crt")
	audit := func(extra ...string) ([]store.AuditEntry, error) {
		out, err := runCLI(append([]string{"audit", "--json", "--server", url, "--token-file", cfg.TokenFile}, extra...)...)
		if err != nil {
			return nil, err
		}
		var es []store.AuditEntry
		if err := json.Unmarshal([]byte(out), &es); err != nil {
			t.Fatalf("haven audit --json: %v: %q", err, out)
		}
		return es, nil
	}
	if _, err := audit(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("haven audit without --ca-file: %v, want a certificate error", err)
	}
	if es, err := audit("--ca-file", ca); err != nil || len(es) != 0 {
		t.Fatalf("haven audit --ca-file: %+v %v, want an empty log", es, err)
	}
	old, err := httpauth.ReadTokenFile(cfg.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI("server", "token", "rotate", "--config", cfgFile, "--role", "admin"); err != nil {
		t.Fatalf("haven server token rotate: %v: %s", err, out)
	}
	oldFile := filepath.Join(dir, "old.token")
	if err := os.WriteFile(oldFile, []byte(old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HAVEN_CA_FILE", ca)
	if _, err := runCLI("audit", "--server", url, "--token-file", oldFile); err == nil {
		t.Error("haven audit with the rotated-out token: no error")
	}
	es, err := audit()
	if err != nil {
		t.Fatalf("haven audit with the new token and $HAVEN_CA_FILE: %v", err)
	}
	if len(es) != 1 || es[0].Action != "token.rotate" || es[0].Target != "admin" {
		t.Errorf("audit log = %+v, want the admin token's rotation", es)
	}
}
