package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// ErrAppendOnly: the storage refused a delete, or a write over an existing
// object with other content, because the credential may only add objects
// (an agent's token on `haven vault serve`, an S3 key without delete, an
// Azure SAS without delete). Permanent: never retried.
var ErrAppendOnly = errors.New("refused: storage is append-only for this credential")

// Refused wraps ErrAppendOnly with what was refused.
func Refused(op, name string) error {
	return fmt.Errorf("%w: %s %s", ErrAppendOnly, op, name)
}

// AppendOnly enforces on the client side what an append-only credential
// enforces on the server: Delete is refused, and Put over an existing name
// is refused unless it stores the same bytes again (a retried write whose
// first attempt landed is not an overwrite). Tests stack it under the vault
// to prove that a writer never deletes or overwrites; `haven vault serve`
// applies the same rule to agent tokens.
type AppendOnly struct{ Backend }

// NewAppendOnly wraps b.
func NewAppendOnly(b Backend) *AppendOnly { return &AppendOnly{Backend: b} }

// Put creates name; see AppendOnly.
func (a *AppendOnly) Put(ctx context.Context, name string, data []byte) error {
	same, err := SameContent(ctx, a.Backend, name, data)
	if err != nil {
		return err
	}
	if same != nil {
		if !*same {
			return Refused("overwrite", name)
		}
		return nil
	}
	return a.Backend.Put(ctx, name, data)
}

// Delete is always refused.
func (a *AppendOnly) Delete(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	return Refused("delete", name)
}

// SameContent reports whether name exists (nil if not) and, if so, whether
// it holds exactly data.
func SameContent(ctx context.Context, b Backend, name string, data []byte) (*bool, error) {
	fi, err := b.Stat(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	same := false
	if fi.Size == int64(len(data)) {
		old, err := b.Get(ctx, name, 0, -1)
		if err != nil {
			return nil, err
		}
		same = bytes.Equal(old, data)
	}
	return &same, nil
}

// Unwrap returns the wrapped backend.
func (a *AppendOnly) Unwrap() Backend { return a.Backend }
