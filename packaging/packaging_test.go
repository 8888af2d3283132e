package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/dns"
	"github.com/haven-dr/haven/internal/host/hostapi"
	"github.com/haven-dr/haven/internal/server"
)

// TestExampleConfigsLoad holds the configs the package installs under
// /etc/haven to the real loaders: an example that does not parse would
// greet every new user with exit code 2.
func TestExampleConfigsLoad(t *testing.T) {
	loaders := map[string]func(string) error{
		"agent.yaml":  func(p string) error { _, err := agent.LoadConfig(p); return err },
		"server.yaml": func(p string) error { _, err := server.LoadConfig(p); return err },
		"dns.yaml":    func(p string) error { _, err := dns.LoadConfig(p); return err },
		"host.yaml":   func(p string) error { _, err := hostapi.LoadConfig(p); return err },
	}
	cfgs, err := Configs("..")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != len(loaders) {
		t.Fatalf("example configs %v, want one per loader %d", cfgs, len(loaders))
	}
	for _, c := range cfgs {
		load := loaders[filepath.Base(c)]
		if load == nil {
			t.Fatalf("%s: no loader checks it", c)
		}
		if err := load(c); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
}

// TestUnitsStartHaven: every unit shipped runs the packaged binary with a
// config under /etc/haven, and says when systemd restarts it.
func TestUnitsStartHaven(t *testing.T) {
	units, err := Units("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		b := string(readFile(t, u))
		if !strings.Contains(b, "\nExecStart=/usr/bin/haven ") || !strings.Contains(b, "\nRestart=") {
			t.Errorf("%s: want ExecStart=/usr/bin/haven ... and a Restart= policy", u)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
