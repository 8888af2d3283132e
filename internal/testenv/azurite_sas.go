package testenv

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob/azblob"
)

// AzuriteSAS is a container on Azurite prepared for an append-only agent:
// created by the admin (shared key), with a container SAS for the agent
// signed by azblob.AgentSAS, exactly as `haven vault prepare-agent` does.
type AzuriteSAS struct {
	Endpoint  string // http://127.0.0.1:PORT/devstoreaccount1
	Account   string
	Container string
	Key       string // the admin's shared key
	SAS       string // the agent's token (query string without "?")
	// URL is the vault URL; open it with AdminEnv or AgentEnv.
	URL string
}

// AdminEnv hands out the shared key.
func (a *AzuriteSAS) AdminEnv(name string) string {
	if name == "AZURE_STORAGE_KEY" {
		return a.Key
	}
	return ""
}

// AgentEnv hands out only the agent's SAS.
func (a *AzuriteSAS) AgentEnv(name string) string {
	if name == "AZURE_STORAGE_SAS_TOKEN" {
		return a.SAS
	}
	return ""
}

// AzuriteAgentSAS starts Azurite, creates a container and signs an agent
// SAS for it valid for an hour.
func AzuriteAgentSAS(t testing.TB) *AzuriteSAS {
	t.Helper()
	endpoint, account, key := Azurite(t)
	a := &AzuriteSAS{Endpoint: endpoint, Account: account, Key: key,
		Container: "hv" + strings.ToLower(rand.Text()[:12])}
	a.URL = "azblob://" + a.Container + "?account=" + account + "&endpoint=" + endpoint
	cfg, err := azblob.ParseURL(a.URL, a.AdminEnv)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := azblob.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := admin.Prepare(ctx); err != nil {
		t.Fatalf("creating container: %v", err)
	}
	if a.SAS, err = azblob.AgentSAS(cfg, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return a
}
