package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/server"
)

func TestHANeedsPostgres(t *testing.T) {
	c := server.Config{Vault: "file:///tmp/v", HA: server.HAConfig{Lease: 10 * time.Second}}
	if err := c.Defaults(); err == nil || !strings.Contains(err.Error(), "postgres://") {
		t.Fatalf("ha on SQLite: %v, want a refusal asking for a postgres:// state", err)
	}
	c = server.Config{Vault: "file:///tmp/v", Listen: "127.0.0.1:7000", State: "postgres://db/haven", HA: server.HAConfig{Lease: 10 * time.Second}}
	if err := c.Defaults(); err != nil || c.HA.Advertise != "http://127.0.0.1:7000" {
		t.Fatalf("Defaults: %v, advertise %q, want http://127.0.0.1:7000", err, c.HA.Advertise)
	}
}
