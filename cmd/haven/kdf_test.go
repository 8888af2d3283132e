//go:build !haventestkdf

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// A released haven (built without -tags haventestkdf) must write full-cost
// keys even when the environment asks for the test KDF.
func TestReleasedBinaryIgnoresTestKDF(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vault")
	t.Setenv("HAVEN_VAULT", dir)
	t.Setenv("HAVEN_PASSWORD", "pw")
	t.Setenv("HAVEN_TEST_KDF", "fast")
	if code := run([]string{"vault", "init"}); code != 0 {
		t.Fatalf("vault init: exit %d", code)
	}
	keys, _ := filepath.Glob(filepath.Join(dir, "keys", "*"))
	if len(keys) != 1 {
		t.Fatalf("key files: %v", keys)
	}
	data, _ := os.ReadFile(keys[0])
	var kf struct {
		KDF    string          `json:"kdf"`
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(data[:bytes.IndexByte(data, '\n')], &kf); err != nil {
		t.Fatal(err)
	}
	if kf.KDF != "argon2id" || string(kf.Params) != `{"t":3,"m":65536,"p":4}` {
		t.Fatalf("released binary wrote kdf %s %s with HAVEN_TEST_KDF=fast", kf.KDF, kf.Params)
	}
}
