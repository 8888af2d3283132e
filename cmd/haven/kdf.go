//go:build !haventestkdf

package main

import "github.com/haven-dr/haven/internal/vault"

// kdfFromEnv is the default KDF in a released haven: no environment variable
// can weaken the keys it writes (the e2e tests build with -tags haventestkdf
// for kdf_testkdf.go instead).
func kdfFromEnv() vault.KDFParams { return vault.KDFParams{} }
