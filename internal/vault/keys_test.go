package vault

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"
)

// keyFileJSON reads the only key file of a fresh vault as generic JSON, so
// the test does not depend on this code's own key-file type.
func keyFileJSON(t *testing.T, v *Vault) (string, map[string]any) {
	t.Helper()
	names, err := listNames(context.Background(), v.be, keysPrefix)
	if err != nil || len(names) != 1 {
		t.Fatalf("key files: %v %v", names, err)
	}
	data, _ := getObject(context.Background(), v.be, names[0])
	body, _, err := splitSigned(names[0], data)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return names[0], m
}

// putKeyFileJSON stores m as the key file, with a valid checksum.
func putKeyFileJSON(t *testing.T, v *Vault, name string, m map[string]any) {
	t.Helper()
	data, err := encodeSigned(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.be.Put(context.Background(), name, data); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultKDFIsArgon2id(t *testing.T) {
	v, err := Init(context.Background(), newBackend(t), "secret", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, kf := keyFileJSON(t, v)
	params, _ := json.Marshal(kf["params"])
	if kf["kdf"] != "argon2id" || string(params) != `{"m":65536,"p":4,"t":3}` {
		t.Fatalf("default key file uses kdf %v %s, want argon2id t=3 m=64 MiB p=4", kf["kdf"], params)
	}
}

// A key file is writable by anyone who can write to the storage; its KDF
// parameters must not make a client allocate or compute without bound.
func TestKeyFileKDFLimits(t *testing.T) {
	cases := map[string]map[string]any{
		"argon2id memory": {"kdf": "argon2id", "params": map[string]any{"t": 1, "m": 4 << 20, "p": 1}},
		"argon2id passes": {"kdf": "argon2id", "params": map[string]any{"t": 1 << 20, "m": 64, "p": 1}},
		"argon2id lanes":  {"kdf": "argon2id", "params": map[string]any{"t": 1, "m": 64 << 10, "p": 255}},
		"scrypt memory":   {"kdf": "scrypt", "params": map[string]any{"n": 1 << 21, "r": 8, "p": 1}},
		"scrypt work":     {"kdf": "scrypt", "params": map[string]any{"n": 1 << 14, "r": 8, "p": 1 << 10}},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			v, be := testVault(t)
			obj, kf := keyFileJSON(t, v)
			kf["kdf"], kf["params"] = bad["kdf"], bad["params"]
			putKeyFileJSON(t, v, obj, kf)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Open(context.Background(), be, "secret", fastKDF)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "kdf parameters refused") {
				t.Fatalf("open with %v: got %v, want a refused-parameters error", bad, err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Fatalf("refusing the key file allocated %d MiB", grew>>20)
			}
		})
	}
}

func TestKeyFileHidesHostAndUser(t *testing.T) {
	v, be := testVault(t)
	_, kf := keyFileJSON(t, v)
	for _, field := range []string{"host", "user"} {
		if _, ok := kf[field]; ok {
			t.Errorf("key file stores %q in the clear: %v", field, kf[field])
		}
	}
	keys, err := v.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if len(keys) != 1 || keys[0].Host != host || keys[0].User != currentUser() {
		t.Fatalf("key list %+v, want host %q user %q", keys, host, currentUser())
	}
	// The sealed metadata is bound to its key file's name.
	obj, kf := keyFileJSON(t, v)
	be.Delete(context.Background(), obj)
	putKeyFileJSON(t, v, keysPrefix+"0000000000000000", kf)
	if _, err := v.Keys(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("key metadata moved to another key file: got %v", err)
	}
}
