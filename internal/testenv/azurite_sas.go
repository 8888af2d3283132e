package testenv

import (
	"context"
	"crypto/rand"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob/blobopen"
)

// AzuriteSAS is a container on Azurite prepared for an append-only agent:
// created by the admin (shared key), with a container SAS for the agent
// signed by blobopen.PrepareAgent, exactly as `haven vault prepare-agent` does.
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
	a.URL = "azblob://" + a.Container + "?account=" + account + "&endpoint=" + url.QueryEscape(endpoint)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acc, err := blobopen.PrepareAgent(ctx, a.URL, a.AdminEnv, blobopen.AgentOptions{SASExpiry: time.Hour})
	if err != nil {
		t.Fatalf("preparing container: %v", err)
	}
	a.SAS = acc.Env["AZURE_STORAGE_SAS_TOKEN"]
	return a
}

// AdminEnviron is the admin's credential as environment entries for a
// child process (haven run by a test), AgentEnviron the agent's.
func (a *AzuriteSAS) AdminEnviron() []string { return []string{"AZURE_STORAGE_KEY=" + a.Key} }

// AgentEnviron: see AdminEnviron.
func (a *AzuriteSAS) AgentEnviron() []string { return []string{"AZURE_STORAGE_SAS_TOKEN=" + a.SAS} }
