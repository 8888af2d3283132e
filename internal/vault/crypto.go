package vault

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/zeebo/blake3"
	"golang.org/x/crypto/chacha20poly1305"
)

// ID identifies a chunk or page blob: the BLAKE3 hash of its plaintext,
// keyed with a key derived from the vault's secret ID key, so that IDs reveal
// nothing about data.
type ID [32]byte

// zeroID stands for an all-zero chunk, which is never stored.
var zeroID ID

func (id ID) String() string { return hex.EncodeToString(id[:]) }
func (id ID) IsZero() bool   { return id == zeroID }

// ParseID parses a 64-digit hex ID.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("invalid id %q", s)
	}
	copy(id[:], b)
	return id, nil
}

// masterKey is the vault's secret material, stored only wrapped in keys/*.
type masterKey struct {
	Enc []byte `json:"enc"` // 32 bytes, XChaCha20-Poly1305 key for all objects
	ID  []byte `json:"id"`  // 32 bytes, root of the keyed-hash keys below

	// One BLAKE3 key per use, so a value hashed for one purpose can never
	// stand for another (a chunk whose bytes equal a page, or the config
	// body, gets an ID unrelated to that page's ID or the config's MAC).
	// Format version 1 used ID for all of them.
	chunk, page, config, name []byte
}

// Contexts for BLAKE3's key derivation mode, one per keyed-hash domain.
const (
	ctxChunk  = "haven vault v2 chunk id"
	ctxPage   = "haven vault v2 page id"
	ctxConfig = "haven vault v2 config mac"
	ctxName   = "haven vault v2 machine name"
)

// derive sets the per-domain keys for a vault of the given format version.
func (k *masterKey) derive(version int) {
	if version < 2 {
		k.chunk, k.page, k.config, k.name = k.ID, k.ID, k.ID, nil
		return
	}
	sub := func(ctx string) []byte {
		out := make([]byte, 32)
		blake3.DeriveKey(ctx, k.ID, out)
		return out
	}
	k.chunk, k.page, k.config, k.name = sub(ctxChunk), sub(ctxPage), sub(ctxConfig), sub(ctxName)
}

func newMasterKey() (*masterKey, error) {
	k := &masterKey{Enc: make([]byte, 32), ID: make([]byte, 32)}
	if _, err := rand.Read(k.Enc); err != nil {
		return nil, err
	}
	if _, err := rand.Read(k.ID); err != nil {
		return nil, err
	}
	return k, nil
}

// hasher returns a keyed BLAKE3 hasher for chunk IDs.
func (k *masterKey) hasher() *blake3.Hasher { return keyed(k.chunk) }

func keyed(key []byte) *blake3.Hasher {
	h, err := blake3.NewKeyed(key)
	if err != nil {
		panic(err) // key length is fixed at 32 bytes by construction
	}
	return h
}

const nonceSize = chacha20poly1305.NonceSizeX

// overhead is what sealing adds to a plaintext: nonce and tag.
const overhead = nonceSize + chacha20poly1305.Overhead

// seal encrypts and authenticates plain with aad, appending nonce||ciphertext to dst.
func seal(key, dst, plain, aad []byte) []byte {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err)
	}
	start := len(dst)
	dst = append(dst, make([]byte, nonceSize)...)
	if _, err := rand.Read(dst[start:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return aead.Seal(dst, dst[start:start+nonceSize], plain, aad)
}

// sealTo seals plain into dst, which must be exactly len(plain)+overhead
// bytes (a region reserved in a pack buffer).
func sealTo(key, dst, plain, aad []byte) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		panic(err)
	}
	if _, err := rand.Read(dst[:nonceSize]); err != nil {
		panic(err)
	}
	aead.Seal(dst[nonceSize:nonceSize], dst[:nonceSize], plain, aad)
}

// open authenticates and decrypts nonce||ciphertext.
func open(key, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < overhead {
		return nil, fmt.Errorf("ciphertext too short (%d bytes)", len(sealed))
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], aad)
}

// openInPlace is open that decrypts over the ciphertext (sealed is
// destroyed), sparing an allocation per blob when restoring gigabytes.
func openInPlace(key, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < overhead {
		return nil, fmt.Errorf("ciphertext too short (%d bytes)", len(sealed))
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	c := sealed[nonceSize:]
	return aead.Open(c[:0], sealed[:nonceSize], c, aad)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// MarshalText encodes the ID as hex in JSON manifests.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses a hex ID.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}
