package vault

import (
	"context"
	"fmt"
	"regexp"
)

const catalogPrefix = "catalog/"

// Catalog names are fixed words chosen by the program ("server"), stored
// in the clear as the object name, so they must never carry user data.
var catalogName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// WriteCatalog stores data as the sealed object catalog/<name>, replacing
// the previous one whole: the server's own state, so that a new control
// plane can be rebuilt from the vault alone.
func (v *Vault) WriteCatalog(ctx context.Context, name string, data []byte) error {
	if !catalogName.MatchString(name) {
		return fmt.Errorf("catalog name %q: want %s", name, catalogName)
	}
	return v.putSealed(ctx, catalogPrefix+name, data)
}

// ReadCatalog returns what WriteCatalog stored under name. A catalog never
// written is an *ObjectError wrapping ErrMissing; a changed, truncated or
// renamed one wraps ErrCorrupt.
func (v *Vault) ReadCatalog(ctx context.Context, name string) ([]byte, error) {
	if !catalogName.MatchString(name) {
		return nil, fmt.Errorf("catalog name %q: want %s", name, catalogName)
	}
	return v.getSealed(ctx, catalogPrefix+name)
}
