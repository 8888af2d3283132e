package testenv

import (
	"fmt"
	"testing"
)

// Azurite's well-known development account (public, documented by
// Microsoft; not a secret).
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Azurite starts the Azure Blob emulator (installed by .ci/setup.d/10-azurite.sh)
// on a free loopback port with in-memory storage and returns the service
// endpoint (http://127.0.0.1:PORT/devstoreaccount1), account and key. It is
// stopped when the test ends.
func Azurite(t testing.TB) (endpoint, account, key string) {
	t.Helper()
	prog := LookPath(t, "azurite-blob")
	port := loopbackPort(t)
	startService(t, "azurite", port, prog,
		"--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
		"--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry")
	return fmt.Sprintf("http://127.0.0.1:%d/%s", port, AzuriteAccount), AzuriteAccount, AzuriteKey
}
