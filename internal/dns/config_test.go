package dns

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// issueSample is the config from issue 3, verbatim: it must stay accepted.
const issueSample = `listen: 127.0.0.1:5353        # DNS, UDP and TCP
api: 127.0.0.1:8053           # HTTP API and /metrics
zones:
  - name: example.test
    records:
      - {name: www, type: A, value: 127.0.0.9}
profiles:
  - name: app.example.test
    routing: priority
    ttl: 5
    monitor: {protocol: http, port: 18080, path: /health, interval: 1s, timeout: 500ms, tolerated_failures: 1}
    endpoints:
      - {name: primary, target: 127.0.0.1, priority: 1}
      - {name: recovery, target: 127.0.0.2, priority: 2}
`

func TestIssueSampleAccepted(t *testing.T) {
	c := mustParse(t, issueSample)
	tb, err := compile(c)
	if err != nil {
		t.Fatal(err)
	}
	p := tb.profile("app.example.test")
	if p == nil || p.ttl != 5 || p.routing != Priority || len(p.endpoints) != 2 {
		t.Fatalf("profile = %+v", p)
	}
	s := p.endpoints[0].spec
	if s == nil || s.Port != 18080 || s.Path != "/health" || s.Interval != time.Second ||
		s.Timeout != 500*time.Millisecond || s.ToleratedFailures != 1 || s.RequiredSuccesses != 1 {
		t.Fatalf("spec = %+v", s)
	}
	if tb.listen != "127.0.0.1:5353" || tb.api != "127.0.0.1:8053" {
		t.Fatalf("addresses %q %q", tb.listen, tb.api)
	}
}

func mustParse(t *testing.T, y string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConfigErrorsNameLineAndField checks that each mistake is reported at
// its own line with the field's path.
func TestConfigErrorsNameLineAndField(t *testing.T) {
	tests := []struct {
		name, from, to string
		line           int
		field          string
	}{
		{"bad target", "target: 127.0.0.2,", "target: 'not an ip!',", 14, "profiles[0].endpoints[1].target"},
		{"bad routing", "routing: priority", "routing: fastest", 9, "profiles[0].routing"},
		{"bad interval", "interval: 1s", "interval: 500s", 11, "profiles[0].monitor.interval"},
		{"timeout over interval", "timeout: 500ms", "timeout: 2s", 11, "profiles[0].monitor.timeout"},
		{"bad record", "value: 127.0.0.9", "value: nope", 6, "zones[0].records[0].value"},
		{"unknown field", "ttl: 5", "tll: 5", 10, "profile.tll"},
		{"bad protocol", "protocol: http", "protocol: icmp", 11, "profiles[0].monitor.protocol"},
		{"outside zone", "name: app.example.test", "name: app.other.test", 8, "profiles[0].name"},
		{"bad listen", "listen: 127.0.0.1:5353", "listen: nowhere", 1, "listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y := strings.Replace(issueSample, tc.from, tc.to, 1)
			err := parseAndCompile(y)
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want a ConfigError", err)
			}
			if ce.Line != tc.line || ce.Field != tc.field {
				t.Fatalf("got line %d field %s (%v), want line %d field %s", ce.Line, ce.Field, err, tc.line, tc.field)
			}
		})
	}
}

func parseAndCompile(y string) error {
	c, err := ParseConfig([]byte(y))
	if err != nil {
		return err
	}
	_, err = compile(c)
	return err
}

func TestConfigYAMLTypeErrorHasLine(t *testing.T) {
	err := parseAndCompile(strings.Replace(issueSample, "ttl: 5", "ttl: [5]", 1))
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "line 10") {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadConfigGeoFileRelative(t *testing.T) {
	dir := t.TempDir()
	geo := "10.0.0.0/8 europe\n# comment\n192.0.2.0/24 asia\n"
	if err := os.WriteFile(filepath.Join(dir, "geo.txt"), []byte(geo), 0o600); err != nil {
		t.Fatal(err)
	}
	y := `listen: 127.0.0.1:0
zones: [{name: example.test}]
profiles:
  - name: geo.example.test
    routing: geographic
    geo_file: geo.txt
    endpoints:
      - {name: eu, target: 192.0.2.10, regions: [europe]}
      - {name: rest, target: 192.0.2.20, regions: [WORLD]}
`
	path := filepath.Join(dir, "dns.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err != nil {
		t.Fatal(err)
	}
}
