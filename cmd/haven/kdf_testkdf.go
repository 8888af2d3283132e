//go:build haventestkdf

package main

import (
	"os"

	"github.com/haven-dr/haven/internal/vault"
)

// kdfFromEnv lets the e2e tests, which run the binary hundreds of times,
// write cheap keys with HAVEN_TEST_KDF=fast. Only a binary built with
// -tags haventestkdf has this file.
func kdfFromEnv() vault.KDFParams {
	if os.Getenv("HAVEN_TEST_KDF") == "fast" {
		return vault.TestKDF
	}
	return vault.KDFParams{}
}
