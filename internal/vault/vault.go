// Package vault is Haven's store of recovery points: point-in-time images of
// machines' disks, cut into fixed-size chunks that are deduplicated by keyed
// hash, compressed with zstd, encrypted with XChaCha20-Poly1305 and packed
// into pack files on any blob.Backend. docs/vault-format.md is the format.
package vault

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/klauspost/compress/zstd"
)

// Vault is an open vault. Safe for concurrent use by several operations.
type Vault struct {
	be     blob.Backend
	cfg    Config
	key    *masterKey
	keyID  string
	kdf    KDFParams
	enc    *zstd.Encoder
	dec    *zstd.Decoder
	holder string // describes this process in lock files
}

// Options tune Init and Open.
type Options struct {
	KDF       KDFParams // for keys this process writes; zero value means DefaultKDF
	ChunkSize int       // Init only; zero means DefaultChunkSize
	PackSize  int       // Init only; zero means DefaultPackSize
	Holder    string    // who we are, for lock files (default host/pid)
}

// Init creates a new vault on be, protected by password.
func Init(ctx context.Context, be blob.Backend, password string, opt Options) (*Vault, error) {
	if _, err := be.Stat(ctx, configName); err == nil {
		return nil, ErrVaultExists
	} else if !errors.Is(err, blob.ErrNotFound) {
		return nil, err
	}
	cfg := Config{Version: FormatVersion, ID: randomHex(16), Created: time.Now().UTC(),
		ChunkSize: orDefault(opt.ChunkSize, DefaultChunkSize), PackSize: orDefault(opt.PackSize, DefaultPackSize)}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	mk, err := newMasterKey()
	if err != nil {
		return nil, err
	}
	return create(ctx, be, cfg, mk, password, opt)
}

// create writes a new vault's key file, then its config.
func create(ctx context.Context, be blob.Backend, cfg Config, mk *masterKey, password string, opt Options) (*Vault, error) {
	mk.derive(cfg.Version)
	v := newVault(be, cfg, mk, opt)
	var err error
	// The key goes first: a vault whose config exists is complete, so a
	// crash between the two leaves only an orphan key and "no vault".
	if v.keyID, err = v.AddKey(ctx, password); err != nil {
		return nil, err
	}
	data, err := encodeSigned(cfg, mk.config)
	if err != nil {
		return nil, err
	}
	if err := be.Put(ctx, configName, data); err != nil {
		return nil, err
	}
	return v, nil
}

// Open opens the vault on be with password.
func Open(ctx context.Context, be blob.Backend, password string, opt Options) (*Vault, error) {
	data, err := be.Get(ctx, configName, 0, -1)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", be.Location(), ErrNoVault)
	}
	if err != nil {
		return nil, err
	}
	ver, err := peekConfigVersion(data)
	if err != nil {
		return nil, err
	}
	if ver < OldestFormatVersion || ver > FormatVersion {
		return nil, fmt.Errorf("%w: vault has version %d, this haven reads versions %d to %d", ErrUnsupportedVersion, ver, OldestFormatVersion, FormatVersion)
	}
	mk, keyID, err := findKey(ctx, be, password)
	if err != nil {
		return nil, err
	}
	mk.derive(ver)
	var cfg Config
	if err := decodeSigned(configName, data, mk.config, &cfg); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, corrupt(configName, "%v", err)
	}
	v := newVault(be, cfg, mk, opt)
	v.keyID = keyID
	return v, nil
}

func newVault(be blob.Backend, cfg Config, mk *masterKey, opt Options) *Vault {
	// No zstd checksum: every blob and object is authenticated by its AEAD
	// tag. No entropy coding of literals: on the benchmark image it cuts
	// snapshot CPU by 15 % for 10 % more stored bytes (docs/vault-bench.md).
	// Concurrency is how many EncodeAll calls may run at once: one per
	// scanning worker, or they queue behind each other.
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(false), zstd.WithWindowSize(1<<17), zstd.WithNoEntropyCompression(true))
	dec, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
	kdf := opt.KDF
	if kdf.alg() == "" {
		kdf = DefaultKDF
	}
	return &Vault{be: be, cfg: cfg, key: mk, kdf: kdf, enc: enc, dec: dec, holder: opt.Holder}
}

// Config returns the vault's configuration.
func (v *Vault) Config() Config { return v.cfg }

// Backend returns the storage the vault lives on.
func (v *Vault) Backend() blob.Backend { return v.be }

// Close releases the vault's resources (not the backend).
func (v *Vault) Close() error {
	v.dec.Close()
	return v.enc.Close()
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// getObject reads a whole object, naming it in a missing-object error.
func getObject(ctx context.Context, be blob.Backend, name string) ([]byte, error) {
	return getRange(ctx, be, name, 0, -1)
}

// getRange reads part of an object; a short read means the object is truncated.
func getRange(ctx context.Context, be blob.Backend, name string, off, n int64) ([]byte, error) {
	data, err := be.Get(ctx, name, off, n)
	if err == nil && n >= 0 && int64(len(data)) != n {
		return nil, corrupt(name, "truncated: wanted %d bytes at offset %d, got %d", n, off, len(data))
	}
	if errors.Is(err, blob.ErrNotFound) {
		return nil, &ObjectError{Object: name, Err: ErrMissing}
	}
	return data, err
}

func listNames(ctx context.Context, be blob.Backend, prefix string) ([]string, error) {
	var names []string
	err := be.List(ctx, prefix, func(fi blob.Info) error {
		names = append(names, fi.Name)
		return nil
	})
	return names, err
}

// putSealed compresses, encrypts and stores a metadata object. The object
// name is the AAD, so an object moved to another name fails authentication.
func (v *Vault) putSealed(ctx context.Context, name string, plain []byte) error {
	return v.be.Put(ctx, name, seal(v.key.Enc, nil, v.enc.EncodeAll(plain, nil), []byte(name)))
}

// getSealed loads, authenticates and decompresses a metadata object.
func (v *Vault) getSealed(ctx context.Context, name string) ([]byte, error) {
	data, err := getObject(ctx, v.be, name)
	if err != nil {
		return nil, err
	}
	return v.openSealed(name, data)
}

func (v *Vault) openSealed(name string, data []byte) ([]byte, error) {
	c, err := open(v.key.Enc, data, []byte(name))
	if err != nil {
		return nil, corrupt(name, detailUnauthentic)
	}
	plain, err := v.dec.DecodeAll(c, nil)
	if err != nil {
		return nil, corrupt(name, "decompress: %v", err)
	}
	return plain, nil
}
