package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

const keysPrefix = "keys/"

// keyFile is one password's wrapping of the master key. Host and user were
// stored in the clear before format version 2; now they are sealed in Meta
// with the vault's encryption key, so only a key holder can read them.
type keyFile struct {
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	User    string    `json:"user,omitempty"`
	KDF     string    `json:"kdf"`
	Params  KDFParams `json:"params"`
	Salt    []byte    `json:"salt"`
	Data    []byte    `json:"data"`           // seal(kek, json(masterKey), aad="haven-key")
	Meta    []byte    `json:"meta,omitempty"` // seal(enc, json(keyMeta), aad=object name)
}

type keyMeta struct {
	Host string `json:"host"`
	User string `json:"user"`
}

// KeyInfo describes a key for 'haven vault key list'.
type KeyInfo struct {
	ID      string    `json:"id"`
	Current bool      `json:"current"`
	Created time.Time `json:"created"`
	Host    string    `json:"host"`
	User    string    `json:"user"`
}

var keyAAD = []byte("haven-key")

func wrapKey(mk *masterKey, name, password string, p KDFParams) ([]byte, error) {
	if password == "" {
		return nil, errors.New("empty password")
	}
	p.Alg = p.alg()
	salt := []byte(randomHex(16))
	kek, err := deriveKEK(password, salt, p)
	if err != nil {
		return nil, fmt.Errorf("kdf: %w", err)
	}
	plain, _ := json.Marshal(mk)
	host, _ := os.Hostname()
	meta, _ := json.Marshal(keyMeta{Host: host, User: currentUser()})
	kf := keyFile{Created: time.Now().UTC(), KDF: p.Alg, Params: p, Salt: salt,
		Data: seal(kek, nil, plain, keyAAD), Meta: seal(mk.Enc, nil, meta, []byte(name))}
	return encodeSigned(kf, nil)
}

func currentUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// unwrapKey returns the master key, or ErrWrongPassword if the key file is
// intact but the password does not open it. Parameters beyond the limits
// are refused before the KDF allocates anything.
func unwrapKey(name string, data []byte, password string) (*masterKey, error) {
	var kf keyFile
	if err := decodeSigned(name, data, nil, &kf); err != nil {
		return nil, err
	}
	kf.Params.Alg = kf.KDF
	kek, err := deriveKEK(password, kf.Salt, kf.Params)
	if err != nil {
		return nil, corrupt(name, "kdf parameters refused: %v", err)
	}
	plain, err := open(kek, kf.Data, keyAAD)
	if err != nil {
		return nil, ErrWrongPassword
	}
	var mk masterKey
	if err := json.Unmarshal(plain, &mk); err != nil || len(mk.Enc) != 32 || len(mk.ID) != 32 {
		return nil, corrupt(name, "bad key material")
	}
	return &mk, nil
}

// findKey tries every key file with the password. A damaged key file does not
// hide a good one; if none opens, damage is reported before "wrong password".
func findKey(ctx context.Context, be blob.Backend, password string) (*masterKey, string, error) {
	names, err := listNames(ctx, be, keysPrefix)
	if err != nil {
		return nil, "", err
	}
	if len(names) == 0 {
		return nil, "", &ObjectError{Object: keysPrefix, Detail: "no key files", Err: ErrMissing}
	}
	var firstDamage error
	for _, name := range names {
		data, err := getObject(ctx, be, name)
		if err != nil {
			return nil, "", err
		}
		mk, err := unwrapKey(name, data, password)
		if err == nil {
			return mk, strings.TrimPrefix(name, keysPrefix), nil
		}
		if !errors.Is(err, ErrWrongPassword) && firstDamage == nil {
			firstDamage = err
		}
	}
	if firstDamage != nil {
		return nil, "", fmt.Errorf("%w (and no intact key opens with this password)", firstDamage)
	}
	return nil, "", ErrWrongPassword
}

// AddKey stores a new key file wrapping the same master key with password.
func (v *Vault) AddKey(ctx context.Context, password string) (string, error) {
	id := randomHex(8)
	data, err := wrapKey(v.key, keysPrefix+id, password, v.kdf)
	if err != nil {
		return "", err
	}
	return id, v.be.Put(ctx, keysPrefix+id, data)
}

// Keys lists the key files.
func (v *Vault) Keys(ctx context.Context) ([]KeyInfo, error) {
	names, err := listNames(ctx, v.be, keysPrefix)
	if err != nil {
		return nil, err
	}
	var out []KeyInfo
	for _, name := range names {
		data, err := getObject(ctx, v.be, name)
		if err != nil {
			return nil, err
		}
		var kf keyFile
		if err := decodeSigned(name, data, nil, &kf); err != nil {
			return nil, err
		}
		id := strings.TrimPrefix(name, keysPrefix)
		ki := KeyInfo{ID: id, Current: id == v.keyID, Created: kf.Created, Host: kf.Host, User: kf.User}
		if kf.Meta != nil {
			plain, err := open(v.key.Enc, kf.Meta, []byte(name))
			var m keyMeta
			if err != nil || json.Unmarshal(plain, &m) != nil {
				return nil, corrupt(name, "key metadata: authentication failed")
			}
			ki.Host, ki.User = m.Host, m.User
		}
		out = append(out, ki)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// RemoveKey deletes a key file. The key this session opened with cannot be
// removed, so the vault can never be left without a working password.
func (v *Vault) RemoveKey(ctx context.Context, id string) error {
	if id == v.keyID {
		return errors.New("refusing to remove the key in use; open the vault with another password first")
	}
	name := keysPrefix + id
	if _, err := v.be.Stat(ctx, name); err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("no key %q", id)
		}
		return err
	}
	return v.be.Delete(ctx, name)
}
