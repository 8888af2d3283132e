package httpblob_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/blob/blobtest"
	"github.com/haven-dr/haven/internal/vaultserve"
	"github.com/haven-dr/haven/internal/vaultserve/servetest"
)

var n atomic.Int64

// open returns an empty vault place on srv, through blobopen as every
// --vault flag does, with token.
func open(t *testing.T, srv *servetest.Served, token string) blob.Backend {
	t.Helper()
	env := map[string]string{"HAVEN_VAULT_TOKEN": token}
	b, err := blobopen.OpenEnv(t.Context(), srv.URL(fmt.Sprintf("v%d", n.Add(1))), blob.Limits{}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The admin token has every right a vault backend has.
func TestConformanceAdmin(t *testing.T) {
	srv := servetest.Start(t, vaultserve.Config{})
	blobtest.Run(t, func(t *testing.T) blob.Backend { return open(t, srv, servetest.AdminToken) })
}

// An agent token is append-only, enforced by the server.
func TestConformanceAgent(t *testing.T) {
	srv := servetest.Start(t, vaultserve.Config{})
	blobtest.RunAppendOnly(t, func(t *testing.T) blob.Backend { return open(t, srv, servetest.AgentToken) })
}
