package dns

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// API changes across restarts and reloads: the real server restarted from
// the same config directory, queried with real DNS queries.

const stateConfig = `listen: 127.0.0.1:0
api: 127.0.0.1:0
zones: [{name: example.test}]
profiles:
  - name: app.example.test
    ttl: 5
    endpoints:
      - {name: primary, target: 127.0.0.1, priority: 1}
      - {name: recovery, target: 127.0.0.2, priority: 2}
`

func writeConfig(t *testing.T, y string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dns.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startFrom starts a server from a config file, as `haven dns` does.
func startFrom(t *testing.T, path string) *Server {
	t.Helper()
	s, err := newFrom(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newFrom(path string) (*Server, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return New(cfg, Options{ConfigPath: path})
}

func answerA(t *testing.T, s *Server) string {
	t.Helper()
	return strings.Join(exchangeA(t, s.DNSAddr(), "app.example.test."), " ")
}

// TestOverridesSurviveRestartAndReload is the failover that a restart used
// to undo: the primary, disabled through the API, was served again.
func TestOverridesSurviveRestartAndReload(t *testing.T) {
	path := writeConfig(t, stateConfig)
	s := startFrom(t, path)
	ctx := context.Background()
	if _, err := apiClient(t, s).UpdateEndpoint(ctx, "app.example.test", "primary",
		EndpointPatch{Enabled: ptr(false), Priority: ptr(7)}); err != nil {
		t.Fatal(err)
	}
	if got := answerA(t, s); got != "127.0.0.2" {
		t.Fatalf("after disabling the primary: %q", got)
	}
	s.Close()

	s = startFrom(t, path)
	if got := answerA(t, s); got != "127.0.0.2" {
		t.Fatalf("after a restart: %q, the failover was undone", got)
	}
	ep, err := apiClient(t, s).Endpoint(ctx, "app.example.test", "primary")
	if err != nil {
		t.Fatal(err)
	}
	want := EndpointValues{Enabled: true, Priority: 1, Weight: 1}
	if ep.Enabled || ep.Priority != 7 || ep.Config != want || ep.Override == nil ||
		*ep.Override.Enabled || *ep.Override.Priority != 7 || ep.Override.Weight != nil || ep.Override.Changed.IsZero() {
		t.Fatalf("status after restart: %+v override %+v", ep, ep.Override)
	}
	if err := s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	if got := answerA(t, s); got != "127.0.0.2" {
		t.Fatalf("after a reload: %q", got)
	}

	// Reset drops the override for good: the config's values are back, and
	// stay back after a restart.
	ep, err = apiClient(t, s).ResetEndpoint(ctx, "app.example.test", "primary")
	if err != nil || ep.Override != nil || !ep.Enabled || ep.Priority != 1 {
		t.Fatalf("reset: %+v, %v", ep, err)
	}
	if got := answerA(t, s); got != "127.0.0.1" {
		t.Fatalf("after reset: %q", got)
	}
	s.Close()
	s = startFrom(t, path)
	if got := answerA(t, s); got != "127.0.0.1" {
		t.Fatalf("restart after reset: %q", got)
	}
}

func ptr[T any](v T) *T { return &v }

// TestStateFileFormat: the state file is private, whole JSON, and written by
// rename (no temporary file left beside it).
func TestStateFileFormat(t *testing.T) {
	path := writeConfig(t, stateConfig)
	s := startFrom(t, path)
	if _, err := apiClient(t, s).SetWeight(context.Background(), "app.example.test.", "recovery", 9); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(filepath.Dir(path), "dns.state.json")
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v", fi.Mode().Perm())
	}
	var d stateDoc
	b, _ := os.ReadFile(state)
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Version != 1 || len(d.Overrides) != 1 || d.Overrides[0].Profile != "app.example.test." ||
		d.Overrides[0].Endpoint != "recovery" || d.Overrides[0].Weight == nil || *d.Overrides[0].Weight != 9 {
		t.Fatalf("state file: %s", b)
	}
	names, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	if len(names) != 0 {
		t.Fatalf("temporary files left: %v", names)
	}
}

// TestBadStateFileRefused: a state file that cannot be read stops the start
// (serving the config's values would undo a failover) and is left as it was.
func TestBadStateFileRefused(t *testing.T) {
	for name, content := range map[string]string{
		"torn":        `{"version":1,"overrides":[{"profile":"app.exa`,
		"newer":       `{"version":2,"overrides":[]}`,
		"bad weight":  `{"version":1,"overrides":[{"profile":"app.example.test.","endpoint":"recovery","weight":0}]}`,
		"unknown key": `{"version":1,"overrides":[],"extra":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := writeConfig(t, stateConfig)
			state := filepath.Join(filepath.Dir(path), "dns.state.json")
			if err := os.WriteFile(state, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := newFrom(path)
			if err == nil {
				s.Close()
				t.Fatal("started with a bad state file")
			}
			if !strings.Contains(err.Error(), "state file") {
				t.Fatalf("error does not name the state file: %v", err)
			}
			if b, _ := os.ReadFile(state); string(b) != content {
				t.Fatalf("state file changed to %s", b)
			}
		})
	}
}

// TestUnsavedChangeNotApplied: a change that cannot be written to the state
// file is refused and not served, so an acknowledged change is always kept.
func TestUnsavedChangeNotApplied(t *testing.T) {
	y := strings.Replace(stateConfig, "api: 127.0.0.1:0\n", "api: 127.0.0.1:0\nstate_file: missing-dir/state.json\n", 1)
	s := startFrom(t, writeConfig(t, y))
	_, err := apiClient(t, s).SetEnabled(context.Background(), "app.example.test", "primary", false)
	if err == nil || !strings.Contains(err.Error(), "change not applied") || errors.Is(err, ErrBadRequest) {
		t.Fatalf("err = %v, want a server-side refusal", err)
	}
	if got := answerA(t, s); got != "127.0.0.1" {
		t.Fatalf("an unsaved change is served: %q", got)
	}
	ep, err := apiClient(t, s).Endpoint(context.Background(), "app.example.test", "primary")
	if err != nil || !ep.Enabled || ep.Override != nil {
		t.Fatalf("status: %+v, %v", ep, err)
	}
}

// TestAnswerPreview: the API's "what would this profile answer now" follows
// an API change, as the real DNS answer does.
func TestAnswerPreview(t *testing.T) {
	s := startFrom(t, writeConfig(t, stateConfig))
	c := apiClient(t, s)
	ctx := context.Background()
	a, err := c.Answer(ctx, "app.example.test", "", "")
	if err != nil || a.Rcode != "NOERROR" || !slices.Equal(a.Endpoints, []string{"primary"}) ||
		len(a.Records) != 1 || !strings.HasSuffix(a.Records[0], "127.0.0.1") {
		t.Fatalf("answer %+v, %v", a, err)
	}
	if _, err := c.SetEnabled(ctx, "app.example.test", "primary", false); err != nil {
		t.Fatal(err)
	}
	a, err = c.Answer(ctx, "app.example.test", "A", "192.0.2.7")
	if err != nil || !slices.Equal(a.Endpoints, []string{"recovery"}) || answerA(t, s) != "127.0.0.2" {
		t.Fatalf("after disabling: %+v, %v", a, err)
	}
	if _, err := c.SetEnabled(ctx, "app.example.test", "recovery", false); err != nil {
		t.Fatal(err)
	}
	if a, err = c.Answer(ctx, "app.example.test", "A", ""); err != nil || a.Rcode != "NXDOMAIN" || len(a.Endpoints) != 0 {
		t.Fatalf("nothing enabled: %+v, %v", a, err)
	}
	if _, err := c.Answer(ctx, "app.example.test", "NOPE", ""); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("bad type: %v", err)
	}
	if _, err := c.Answer(ctx, "nope.example.test", "", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown profile: %v", err)
	}
}
