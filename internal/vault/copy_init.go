package vault

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// ErrNotACopy: the destination of a copy does not share the source's
// keys, so its objects could not be copied byte for byte.
var ErrNotACopy = errors.New("the destination vault was not created as a copy of the source (its keys differ): " +
	"create it with 'haven vault copy --init'")

// InitCopy creates on be a vault that shares src's master key (encryption
// and ID keys), format version, chunk size and pack size, wrapped by its
// own password, which may differ from src's. Sharing the keys is what lets
// a copy move packs, indexes and manifests byte for byte: points are
// identical in both vaults, dedupe alike, and nothing is decrypted and
// re-encrypted on the way. The copy gets its own vault ID and key files.
func InitCopy(ctx context.Context, be blob.Backend, src *Vault, password string, opt Options) (*Vault, error) {
	if _, err := be.Stat(ctx, configName); err == nil {
		return nil, ErrVaultExists
	} else if !errors.Is(err, blob.ErrNotFound) {
		return nil, err
	}
	if be.Location() == src.be.Location() {
		return nil, fmt.Errorf("source and destination are the same storage (%s)", be.Location())
	}
	cfg := Config{Version: src.cfg.Version, ID: randomHex(16), Created: time.Now().UTC(),
		ChunkSize: src.cfg.ChunkSize, PackSize: src.cfg.PackSize}
	mk := &masterKey{Enc: append([]byte(nil), src.key.Enc...), ID: append([]byte(nil), src.key.ID...)}
	return create(ctx, be, cfg, mk, password, opt)
}

// sameKeys reports whether dst can hold src's objects as they are.
func sameKeys(src, dst *Vault) error {
	if src.cfg.ID == dst.cfg.ID && src.be.Location() == dst.be.Location() {
		return errors.New("source and destination are the same vault")
	}
	if subtle.ConstantTimeCompare(src.key.Enc, dst.key.Enc) != 1 || subtle.ConstantTimeCompare(src.key.ID, dst.key.ID) != 1 ||
		src.cfg.Version != dst.cfg.Version {
		return ErrNotACopy
	}
	return nil
}
