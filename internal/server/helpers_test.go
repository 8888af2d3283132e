package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/blob/fileblob"
	"github.com/haven-dr/haven/internal/httpauth"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/servertest"
	"github.com/haven-dr/haven/internal/vault"
)

// fastKDF keeps vault creation cheap; the server reads the KDF parameters
// from the vault's key file, so it opens it just as fast.
var fastKDF = vault.Options{KDF: vault.KDFParams{N: 1 << 10, R: 8, P: 1}}

const testPassword = "correct horse"

// env is a server's surroundings: a real file vault, its password file,
// a state dir and the agents' token files.
type env struct {
	dir       string
	vaultDir  string
	cfg       *server.Config
	agentTok  map[string]string // agent name -> token
	agentFile map[string]string // agent name -> token file
}

// newEnv makes a vault; seed, when set, runs against it before the
// server opens it (to store recovery points).
func newEnv(t *testing.T, seed func(*vault.Vault)) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), agentTok: map[string]string{}, agentFile: map[string]string{}}
	e.vaultDir = filepath.Join(e.dir, "vault")
	be, err := fileblob.New(e.vaultDir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(context.Background(), be, testPassword, fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	if seed != nil {
		seed(v)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(e.dir, "password")
	if err := os.WriteFile(pw, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	off := false
	e.cfg = &server.Config{Listen: "127.0.0.1:0", StateDir: filepath.Join(e.dir, "state"),
		Vault: "file://" + e.vaultDir, PasswordFile: pw, Standby: &off}
	if err := e.cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"dc1-agent", "dc1-backup"} {
		e.agentTok[a] = a + "-token-0123456789abcdef"
		e.agentFile[a] = filepath.Join(e.dir, a+".token")
		if err := os.WriteFile(e.agentFile[a], []byte(e.agentTok[a]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// protectionDoc is a valid protection document: two agents, two machines
// (db, web) and the plan shop. Agents point at loopback port 1: nothing in
// these tests calls them.
const protectionDoc = `sites:
  primary: dc1
  recovery: dc2
networks:
  primary:
    - name: prod
      subnet: 10.1.0.0/24
      gateway: 10.1.0.1
  recovery:
    - name: rec
      subnet: 10.1.0.0/24
      gateway: 10.1.0.1
  test:
    - name: drill
      subnet: 10.1.0.0/24
      gateway: 10.1.0.1
mapping:
  recovery:
    prod: rec
  test:
    prod: drill
agents:
  - name: dc1-agent
    url: http://127.0.0.1:1
    token_file: AGENT_TOKEN_FILE
  - name: dc1-backup
    url: http://127.0.0.1:1
    token_file: BACKUP_TOKEN_FILE
machines:
  - name: db
    agent: dc1-agent
    disks:
      - name: root
        path: /nonexistent/db-root.img
    nics:
      - name: eth0
        network: prod
        address: 10.1.0.10/24
    health:
      tcp_port: 5432
  - name: web
    agent: dc1-agent
    disks:
      - name: root
        path: /nonexistent/web-root.img
    nics:
      - name: eth0
        network: prod
        address: 10.1.0.20/24
    health:
      http_port: 80
plans:
  - name: shop
    groups:
      - name: database
        machines: [db]
      - name: frontend
        machines: [web]
`

func (e *env) doc() string {
	return strings.NewReplacer("AGENT_TOKEN_FILE", e.agentFile["dc1-agent"],
		"BACKUP_TOKEN_FILE", e.agentFile["dc1-backup"]).Replace(protectionDoc)
}

// running is a server serving on a loopback port.
type running struct {
	*server.Server
	base  string
	token string
	stop  func() // ends it before the test does (idempotent)
}

// start runs a server of e until the test ends.
func (e *env) start(t *testing.T) *running {
	t.Helper()
	return e.startWith(t, server.Options{})
}

// startWith is start with options; the logger is a quiet one unless
// o names one.
func (e *env) startWith(t *testing.T, o server.Options) *running {
	t.Helper()
	r := servertest.Start(t, e.cfg, o)
	// The operator may have deleted the file: the server needs only
	// the token's hash (tokens_test.go).
	tok, err := httpauth.ReadTokenFile(e.cfg.TokenFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	scheme := "http://"
	if e.cfg.TLS.Mode != "off" {
		scheme = "https://"
	}
	return &running{Server: r.Server, base: scheme + r.Addr, token: tok, stop: r.Stop}
}

// answer is an HTTP answer, read whole.
type answer struct {
	status int
	body   []byte
}

func (a answer) apiError(t *testing.T) server.APIError {
	t.Helper()
	var e server.APIError
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error == "" {
		t.Fatalf("status %d: body is not an APIError: %q (%v)", a.status, a.body, err)
	}
	return e
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("status %d: %v in %q", a.status, err, a.body)
	}
}

// call sends a request with token ("" for none).
func (r *running) call(t *testing.T, method, path, token string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, r.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, b}
}

func (r *running) admin(t *testing.T, method, path string, body []byte) answer {
	t.Helper()
	return r.call(t, method, path, r.token, body)
}

// mustApply applies doc and returns its version.
func (r *running) mustApply(t *testing.T, doc string) int64 {
	t.Helper()
	a := r.admin(t, "POST", "/v1/apply", []byte(doc))
	if a.status != http.StatusOK {
		t.Fatalf("apply: %d %s", a.status, a.body)
	}
	var res api.ApplyResult
	a.decode(t, &res)
	return res.Version
}

// lineOf is the 1-based line of the first occurrence of s in doc.
func lineOf(t *testing.T, doc, s string) int {
	t.Helper()
	i := strings.Index(doc, s)
	if i < 0 {
		t.Fatalf("%q not in the document", s)
	}
	return strings.Count(doc[:i], "\n") + 1
}

// edit replaces the single occurrence of old in doc.
func edit(t *testing.T, doc, old, new string) string {
	t.Helper()
	if n := strings.Count(doc, old); n != 1 {
		t.Fatalf("anchor %q occurs %d times", old, n)
	}
	return strings.Replace(doc, old, new, 1)
}

// concrete fills a route's path parameters.
func concrete(route string) (method, path string) {
	method, path, _ = strings.Cut(route, " ")
	return method, strings.NewReplacer("{plan}", "shop", "{id}", "nojob", "{agent}", "dc1-agent").Replace(path)
}
