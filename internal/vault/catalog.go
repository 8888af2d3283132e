package vault

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/haven-dr/haven/internal/blob"
)

const catalogPrefix = "catalog/"

// Catalog names are fixed words chosen by the program ("server"), stored
// in the clear as the object name, so they must never carry user data.
var catalogName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// catalogMagic starts the plaintext of a versioned catalog object, before
// its version number: the number is inside the sealed part as well as in
// the object's name, so neither can be changed without the other.
const catalogMagic = "HVC1"

// ErrCatalogExists: a catalog version is written once, never replaced.
var ErrCatalogExists = errors.New("catalog version exists")

// catalogObject is the object of version seq of catalog name. Twenty
// digits keep listing order and number order the same.
func catalogObject(name string, seq uint64) string {
	return fmt.Sprintf("%s%s.%020d", catalogPrefix, name, seq)
}

func checkCatalogName(name string) error {
	if !catalogName.MatchString(name) {
		return fmt.Errorf("catalog name %q: want %s", name, catalogName)
	}
	return nil
}

// WriteCatalog stores version seq of catalog name as the sealed object
// catalog/<name>.<seq>: the server's own state, so that a new control
// plane can be rebuilt from the vault alone. Versions are separate
// objects and an existing one is never replaced (ErrCatalogExists): going
// back to an older state needs a delete, which append-only storage
// refuses. seq must grow with every write (the caller's counter).
func (v *Vault) WriteCatalog(ctx context.Context, name string, seq uint64, data []byte) error {
	if err := checkCatalogName(name); err != nil {
		return err
	}
	if seq == 0 {
		return fmt.Errorf("catalog %s: version 0 is reserved for the unversioned object", name)
	}
	obj := catalogObject(name, seq)
	if _, err := v.be.Stat(ctx, obj); err == nil {
		return fmt.Errorf("%w: %s", ErrCatalogExists, obj)
	} else if !errors.Is(err, blob.ErrNotFound) {
		return err
	}
	plain := make([]byte, 0, len(catalogMagic)+8+len(data))
	plain = append(plain, catalogMagic...)
	plain = binary.BigEndian.AppendUint64(plain, seq)
	return v.putSealed(ctx, obj, append(plain, data...))
}

// ReadCatalog returns version seq of catalog name. A version never
// written is an *ObjectError wrapping ErrMissing; a changed, truncated or
// renamed one (another version's object copied over it included) wraps
// ErrCorrupt.
func (v *Vault) ReadCatalog(ctx context.Context, name string, seq uint64) ([]byte, error) {
	if err := checkCatalogName(name); err != nil {
		return nil, err
	}
	if seq == 0 {
		return v.getSealed(ctx, catalogPrefix+name)
	}
	obj := catalogObject(name, seq)
	plain, err := v.getSealed(ctx, obj)
	if err != nil {
		return nil, err
	}
	h := len(catalogMagic) + 8
	if len(plain) < h || string(plain[:len(catalogMagic)]) != catalogMagic {
		return nil, corrupt(obj, "no catalog header")
	}
	if got := binary.BigEndian.Uint64(plain[len(catalogMagic):h]); got != seq {
		return nil, corrupt(obj, "holds version %d", got)
	}
	return plain[h:], nil
}

// CatalogVersions lists the versions of catalog name in the vault, newest
// first, by object name only (nothing is read or verified). An object
// catalog/<name> written before catalogs had versions counts as 0.
func (v *Vault) CatalogVersions(ctx context.Context, name string) ([]uint64, error) {
	if err := checkCatalogName(name); err != nil {
		return nil, err
	}
	var out []uint64
	legacy := catalogPrefix + name
	err := v.be.List(ctx, legacy, func(i blob.Info) error {
		if i.Name == legacy {
			out = append(out, 0)
			return nil
		}
		rest, ok := strings.CutPrefix(i.Name, legacy+".")
		if !ok || len(rest) != 20 {
			return nil // another catalog whose name starts with this one
		}
		if n, err := strconv.ParseUint(rest, 10, 64); err == nil && n > 0 {
			out = append(out, n)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i] > out[j] })
	return out, err
}

// LatestCatalog returns the newest version of catalog name that verifies.
// Newer versions that do not (damaged, or replaced by someone who can
// write objects) are returned in skipped, one error each, so the caller
// can say what it passed over. No verifying version is ErrMissing (none
// at all) or the newest version's error.
func (v *Vault) LatestCatalog(ctx context.Context, name string) (seq uint64, data []byte, skipped []error, err error) {
	seqs, err := v.CatalogVersions(ctx, name)
	if err != nil {
		return 0, nil, nil, err
	}
	for _, s := range seqs {
		data, err := v.ReadCatalog(ctx, name, s)
		if err == nil {
			return s, data, skipped, nil
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrMissing) {
			return 0, nil, skipped, err // the storage failed: not the object's fault
		}
		skipped = append(skipped, err)
	}
	if len(skipped) > 0 {
		return 0, nil, skipped, skipped[0]
	}
	return 0, nil, nil, &ObjectError{Object: catalogPrefix + name, Detail: "no catalog", Err: ErrMissing}
}
