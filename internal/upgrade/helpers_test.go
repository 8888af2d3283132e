package upgrade_test

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/server/servertest"
)

// protectionDoc is the fixture's plan: machine db (the vault's points)
// and web, both on agent dc1-agent, in plan shop.
const protectionDoc = `sites:
  primary: dc1
  recovery: dc2
networks:
  primary:
    - {name: prod, subnet: 10.1.0.0/24, gateway: 10.1.0.1}
  recovery:
    - {name: rec, subnet: 10.1.0.0/24, gateway: 10.1.0.1}
  test:
    - {name: drill, subnet: 10.1.0.0/24, gateway: 10.1.0.1}
mapping:
  recovery: {prod: rec}
  test: {prod: drill}
agents:
  - name: dc1-agent
    url: http://127.0.0.1:1
    token_file: AGENT_TOKEN_FILE
machines:
  - name: db
    agent: dc1-agent
    disks: [{name: root, path: /nonexistent/db-root.img}]
    nics: [{name: eth0, network: prod, address: 10.1.0.10/24}]
    health: {tcp_port: 5432}
  - name: web
    agent: dc1-agent
    disks: [{name: root, path: /nonexistent/web-root.img}]
    nics: [{name: eth0, network: prod, address: 10.1.0.20/24}]
    health: {http_port: 80}
plans:
  - name: shop
    groups:
      - {name: database, machines: [db]}
      - {name: frontend, machines: [web]}
`

// site is a server's surroundings in a temporary directory: its config
// (vault, password, state dir) and agent dc1-agent's token file.
type site struct {
	dir       string
	cfg       *server.Config
	agentTok  string
	agentFile string
}

// newSite configures a server on vaultDir with password pw; state, when
// set, is a postgres:// URL.
func newSite(t *testing.T, vaultDir, pw, state string) *site {
	t.Helper()
	s := &site{dir: t.TempDir(), agentTok: "dc1-agent-token-0123456789abcdef"}
	pwFile := filepath.Join(s.dir, "password")
	s.agentFile = filepath.Join(s.dir, "dc1-agent.token")
	for f, b := range map[string]string{pwFile: pw + "\n", s.agentFile: s.agentTok + "\n"} {
		if err := os.WriteFile(f, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	off := false
	s.cfg = &server.Config{Listen: "127.0.0.1:0", StateDir: filepath.Join(s.dir, "state"), Vault: "file://" + vaultDir,
		PasswordFile: pwFile, Standby: &off, State: state, TLS: server.TLSConfig{Mode: "off"}}
	if err := s.cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *site) doc() string {
	return strings.ReplaceAll(protectionDoc, "AGENT_TOKEN_FILE", s.agentFile)
}

// running is a server of a site serving on a loopback port.
type running struct {
	base string
	stop func() // idempotent; also run at the test's end
}

func (s *site) start(t *testing.T) *running {
	t.Helper()
	r := servertest.Start(t, s.cfg, server.Options{})
	return &running{base: "http://" + r.Addr, stop: r.Stop}
}

// call sends a request and returns the status and the body.
func (r *running) call(t *testing.T, method, path, token string, header map[string]string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, r.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// get decodes a 200 answer to GET path into v.
func (r *running) get(t *testing.T, path, token string, v any) {
	t.Helper()
	status, b := r.call(t, "GET", path, token, nil, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// copyDir copies the regular files under src to dst (made if missing).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		return copyFile(p, filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}
