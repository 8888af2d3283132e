package server_test

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/host"
	"github.com/haven-dr/haven/internal/host/hostapi"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/vault"
	"github.com/haven-dr/haven/internal/vnet/overlay"
)

func TestHostsConfigChecked(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "tok")
	for _, tc := range []struct {
		name  string
		hosts []server.HostConfig
		want  string
	}{
		{"bad name", []server.HostConfig{{Name: "Host A"}}, "lower-case"},
		{"twice", []server.HostConfig{{Name: "a"}, {Name: "a", URL: "https://b:1", TokenFile: tok}}, "named twice"},
		{"two locals", []server.HostConfig{{Name: "a"}, {Name: "b", URL: "local"}}, "one host at most is local"},
		{"bad url", []server.HostConfig{{Name: "b", URL: "ftp://b", TokenFile: tok}}, "want https://"},
		{"no token", []server.HostConfig{{Name: "b", URL: "https://b:7790"}}, "token_file: missing"},
		{"negative", []server.HostConfig{{Name: "a", CPUs: -1}}, "negative"},
		{"remote overlay", []server.HostConfig{{Name: "b", URL: "https://b:7790", TokenFile: tok, Overlay: &overlay.Underlay{Local: netip.MustParseAddr("192.0.2.2")}}}, "its host.yaml"},
		{"local overlay", []server.HostConfig{{Name: "a", Overlay: &overlay.Underlay{MTU: 100}}}, "underlay local address missing"},
	} {
		cfg := &server.Config{Vault: "file:///nonexistent", Hosts: tc.hosts}
		if err := cfg.Defaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// twoHosts makes e's server run on two hosts of 4 CPUs: a (this
// machine, with the uplink) and b, a remote host in the config.
func twoHosts(t *testing.T, e *env) {
	tok := filepath.Join(e.dir, "host-b.token")
	if err := os.WriteFile(tok, []byte("b-token-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.Hosts = []server.HostConfig{{Name: "a", CPUs: 4, Edge: true},
		{Name: "b", URL: "https://b.invalid:7790", TokenFile: tok, CPUs: 4}}
	if err := e.cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
}

// localDialer dials a "remote" host as a second in-process host.Local
// with its own state directory (so its own namespace names), through the
// dialer a remote host's client comes through; dialed records the names.
func localDialer(t *testing.T, e *env, dialed *[]string) server.Options {
	return server.Options{Hosts: func(ctx context.Context, hc server.HostConfig, v *vault.Vault) (host.Host, error) {
		*dialed = append(*dialed, hc.Name)
		h, err := host.NewLocal(filepath.Join(e.dir, "host-"+hc.Name), v, nil)
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { h.Close(context.Background()) })
		return h, nil
	}}
}

func TestApplyPlacesOnHosts(t *testing.T) {
	e := newEnv(t, nil)
	twoHosts(t, e)
	var dialed []string
	r := e.startWith(t, localDialer(t, e, &dialed))
	if len(dialed) != 1 || dialed[0] != "b" {
		t.Fatalf("dialed %v, want b", dialed)
	}
	doc := edit(t, e.doc(), "    health:\n      tcp_port: 5432", "    cpus: 3\n    health:\n      tcp_port: 5432")
	doc = edit(t, doc, "    health:\n      http_port: 80", "    cpus: 3\n    health:\n      http_port: 80")
	a := r.admin(t, "POST", "/v1/apply", []byte(doc))
	if a.status != http.StatusOK {
		t.Fatalf("apply: %d %s", a.status, a.body)
	}
	var res api.ApplyResult
	a.decode(t, &res)
	if res.Placement["db"] == "" || res.Placement["web"] == "" || res.Placement["db"] == res.Placement["web"] {
		t.Fatalf("3 + 3 CPUs on hosts of 4: one machine per host, got %v", res.Placement)
	}
	w := strings.Join(res.Warnings, "\n")
	if len(res.Warnings) != 2 || !strings.Contains(w, "without host a") || !strings.Contains(w, "without host b") {
		t.Fatalf("N+1 warnings: %q", res.Warnings)
	}
	big := edit(t, doc, "    cpus: 3\n    health:\n      tcp_port: 5432", "    cpus: 5\n    health:\n      tcp_port: 5432")
	a = r.admin(t, "POST", "/v1/apply", []byte(big))
	if a.status != http.StatusPreconditionFailed || !strings.Contains(a.apiError(t).Error, "db (5 CPUs") {
		t.Fatalf("a machine of 5 CPUs on hosts of 4: %d %s", a.status, a.body)
	}
}

// TestRemoteHostThroughHostAPI: a remote host in server.yaml is reached
// through a real `haven host` API (hostapi over TLS, with the token and
// CA the config names), without any dialer passed in: while it answers it
// is not lost, and once it stops answering the server says so.
func TestRemoteHostThroughHostAPI(t *testing.T) {
	e := newEnv(t, nil)
	dir := t.TempDir()
	hl, err := host.NewLocal(filepath.Join(dir, "host"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const tok = "b-token-0123456789abcdef"
	var infos atomic.Int32
	handler := (&hostapi.Server{B: hl, Token: tok, DiskDir: filepath.Join(dir, "disks")}).Handler()
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/info" && r.Header.Get("Authorization") == "Bearer "+tok {
			infos.Add(1)
		}
		handler.ServeHTTP(w, r)
	}))
	defer ts.Close()
	ca := filepath.Join(dir, "ca.crt")
	tokFile := filepath.Join(dir, "tok")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.Hosts = []server.HostConfig{{Name: "a", Edge: true}, {Name: "b", URL: ts.URL, TokenFile: tokFile, CAFile: ca}}
	if err := e.cfg.Defaults(); err != nil {
		t.Fatal(err)
	}
	r := e.start(t)
	ctx := context.Background()
	if lost := r.Orchestrator().LostHosts(ctx); len(lost) != 0 {
		t.Fatalf("lost hosts %+v while b answers", lost)
	}
	if infos.Load() == 0 {
		t.Fatal("the server never asked host b with b's token")
	}
	ts.Close()
	lost := r.Orchestrator().LostHosts(ctx)
	if len(lost) != 1 || lost[0].Name != "b" || lost[0].Err == nil {
		t.Fatalf("lost hosts %+v after b stopped answering, want b", lost)
	}
}

// TestVMDriverConfig: server.yaml's vm_driver is for its own host, and a
// value it cannot run is a config error.
func TestVMDriverConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "server.yaml")
		if err := os.WriteFile(p, []byte("vault: file:///nonexistent\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := server.LoadConfig(write("vm_driver: libvirt\nlibvirt_socket: /run/lv/sock\n"))
	if err != nil || c.VMDriver != "libvirt" || c.LibvirtSocket != "/run/lv/sock" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, body := range []string{"vm_driver: xen\n", "vm_driver: libvirt\nlibvirt_socket: sock\n"} {
		if _, err := server.LoadConfig(write(body)); !errors.Is(err, server.ErrConfig) {
			t.Errorf("%q: %v, want ErrConfig", body, err)
		}
	}
}
