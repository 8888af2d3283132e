// Package specreader is a second, independent reader of Haven vaults,
// written from docs/vault-format.md alone with the standard library and the
// cryptographic primitives the document names. It shares no code with
// package vault, so a test that restores a disk through it checks the
// document against what Haven really writes.
package specreader

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/scrypt"
)

// Reader reads a vault stored in a directory.
type Reader struct {
	dir                        string
	Version                    int
	enc                        []byte
	chunkKey, pageKey, nameKey []byte
	blobs                      map[[32]byte]entry
	packs                      map[[32]byte][]byte // verified pack files
	zstd                       *zstd.Decoder
}

type entry struct {
	pack             [32]byte
	typ, flags       byte
	id               [32]byte
	off, length, raw uint64
}

// Manifest is the part of a point manifest needed to read it.
type Manifest struct {
	ID        string `json:"id"`
	Machine   string `json:"machine"`
	ChunkSize int64  `json:"chunk_size"`
	Disks     []struct {
		Name  string   `json:"name"`
		Size  int64    `json:"size"`
		Pages []string `json:"pages"`
	} `json:"disks"`
}

func (r *Reader) get(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(name)))
}

// list returns the object names under prefix, skipping writes in progress.
func (r *Reader) list(prefix string) ([]string, error) {
	var names []string
	root := filepath.Join(r.dir, filepath.FromSlash(prefix))
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".hvtmp-") {
			return nil
		}
		rel, _ := filepath.Rel(r.dir, p)
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return names, err
}

// splitSigned returns the body of a signed plaintext object and its sum.
func splitSigned(data []byte) ([]byte, string, error) {
	data = bytes.TrimSuffix(data, []byte("\n"))
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 || len(data)-i-1 != 64 {
		return nil, "", errors.New("not a signed object")
	}
	return data[:i], string(data[i+1:]), nil
}

func keyedHash(key, b []byte) [32]byte {
	h, _ := blake3.NewKeyed(key)
	h.Write(b)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func openBox(key, sealed, aad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("sealed box too short")
	}
	n := aead.NonceSize()
	return aead.Open(nil, sealed[:n], sealed[n:], aad)
}

// Open opens the vault in dir with password.
func Open(dir, password string) (*Reader, error) {
	r := &Reader{dir: dir, blobs: map[[32]byte]entry{}, packs: map[[32]byte][]byte{}}
	r.zstd, _ = zstd.NewReader(nil)
	cfg, err := r.get("config")
	if err != nil {
		return nil, err
	}
	body, mac, err := splitSigned(cfg)
	if err != nil {
		return nil, err
	}
	var c struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, err
	}
	if c.Version != 1 && c.Version != 2 {
		return nil, fmt.Errorf("version %d not supported", c.Version)
	}
	r.Version = c.Version
	idKey, err := r.unwrap(password)
	if err != nil {
		return nil, err
	}
	cfgKey := r.deriveKeys(idKey)
	if sum := keyedHash(cfgKey, body); hex.EncodeToString(sum[:]) != mac {
		return nil, errors.New("config MAC mismatch")
	}
	return r, r.loadIndex()
}

// deriveKeys sets the per-purpose keys and returns the config key.
func (r *Reader) deriveKeys(idKey []byte) []byte {
	if r.Version == 1 {
		r.chunkKey, r.pageKey = idKey, idKey
		return idKey
	}
	d := func(ctx string) []byte {
		out := make([]byte, 32)
		blake3.DeriveKey(ctx, idKey, out)
		return out
	}
	r.chunkKey, r.pageKey, r.nameKey = d("haven vault v2 chunk id"), d("haven vault v2 page id"), d("haven vault v2 machine name")
	return d("haven vault v2 config mac")
}

// unwrap tries every key file; it returns the ID key and sets the encryption key.
func (r *Reader) unwrap(password string) ([]byte, error) {
	names, err := r.list("keys/")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		data, err := r.get(name)
		if err != nil {
			return nil, err
		}
		body, _, err := splitSigned(data)
		if err != nil {
			return nil, err
		}
		var kf struct {
			KDF    string `json:"kdf"`
			Params struct {
				T, M    uint32
				N, R, P int
			} `json:"params"`
			Salt, Data []byte
		}
		if err := json.Unmarshal(body, &kf); err != nil {
			return nil, err
		}
		p := kf.Params
		var kek []byte
		switch {
		case kf.KDF == "argon2id" && p.T >= 1 && p.T <= 10 && p.P >= 1 && p.P <= 16 && p.M >= 8*uint32(p.P) && p.M <= 1<<20:
			kek = argon2.IDKey([]byte(password), kf.Salt, p.T, p.M, uint8(p.P), 32)
		case kf.KDF == "scrypt" && p.N > 1 && p.N&(p.N-1) == 0 && p.R >= 1 && p.R <= 64 && p.P >= 1 && p.P <= 16 &&
			128*p.N*p.R <= 1<<30 && p.N*p.R*p.P <= 1<<24:
			if kek, err = scrypt.Key([]byte(password), kf.Salt, p.N, p.R, p.P, 32); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%s: kdf %q %+v refused", name, kf.KDF, p)
		}
		plain, err := openBox(kek, kf.Data, []byte("haven-key"))
		if err != nil {
			continue // another password's key
		}
		var mk struct{ Enc, ID []byte }
		if err := json.Unmarshal(plain, &mk); err != nil || len(mk.Enc) != 32 || len(mk.ID) != 32 {
			return nil, fmt.Errorf("%s: bad key material", name)
		}
		r.enc = mk.Enc
		return mk.ID, nil
	}
	return nil, errors.New("wrong password")
}

// getSealed opens a sealed object: AAD is its name, payload one zstd frame.
func (r *Reader) getSealed(name string) ([]byte, error) {
	data, err := r.get(name)
	if err != nil {
		return nil, err
	}
	c, err := openBox(r.enc, data, []byte(name))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return r.zstd.DecodeAll(c, nil)
}

func (r *Reader) loadIndex() error {
	names, err := r.list("index/")
	if err != nil {
		return err
	}
	for _, name := range names {
		b, err := r.getSealed(name)
		if err != nil {
			return err
		}
		if err := r.parseIndex(b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func (r *Reader) parseIndex(b []byte) error {
	if !bytes.HasPrefix(b, []byte("HVX1")) {
		return errors.New("bad magic")
	}
	b = b[4:]
	uv := func() uint64 {
		x, n := binary.Uvarint(b)
		b = b[max(n, 0):]
		return x
	}
	for packs := uv(); packs > 0; packs-- {
		var e entry
		copy(e.pack[:], b)
		b = b[32:]
		for n := uv(); n > 0; n-- {
			e.typ, e.flags = b[0], b[1]
			copy(e.id[:], b[2:34])
			b = b[34:]
			e.off, e.length, e.raw = uv(), uv(), uv()
			r.blobs[e.id] = e
		}
	}
	return nil
}

// blob fetches a blob by ID alone and verifies it.
func (r *Reader) blob(id [32]byte) ([]byte, error) {
	e, ok := r.blobs[id]
	if !ok {
		return nil, fmt.Errorf("blob %x in no index", id)
	}
	pack, err := r.pack(e.pack)
	if err != nil {
		return nil, err
	}
	if e.off+e.length > uint64(len(pack)) {
		return nil, fmt.Errorf("blob %x beyond its pack", id)
	}
	sealed := pack[e.off : e.off+e.length]
	payload, err := openBox(r.enc, sealed, append([]byte{e.typ}, id[:]...))
	if err != nil {
		return nil, fmt.Errorf("blob %x: %w", id, err)
	}
	plain := payload
	if e.flags&1 != 0 {
		if plain, err = r.zstd.DecodeAll(payload, nil); err != nil {
			return nil, err
		}
	}
	key := r.chunkKey
	if e.typ == 1 {
		key = r.pageKey
	}
	if uint64(len(plain)) != e.raw || keyedHash(key, plain) != id {
		return nil, fmt.Errorf("blob %x: content does not match", id)
	}
	return plain, nil
}

// pack reads a pack once and checks it against its name.
func (r *Reader) pack(id [32]byte) ([]byte, error) {
	if p, ok := r.packs[id]; ok {
		return p, nil
	}
	hx := hex.EncodeToString(id[:])
	p, err := r.get("data/" + hx[:2] + "/" + hx)
	if err != nil {
		return nil, err
	}
	if blake3.Sum256(p) != id {
		return nil, fmt.Errorf("pack %s: hash mismatch", hx)
	}
	r.packs[id] = p
	return p, nil
}

// Latest returns the newest point of machine.
func (r *Reader) Latest(machine string) (*Manifest, error) {
	dir := machine
	if r.Version == 2 {
		h := keyedHash(r.nameKey, []byte(machine))
		dir = hex.EncodeToString(h[:16])
	}
	names, err := r.list("points/" + dir + "/")
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("no points of %s: %v", machine, err)
	}
	sort.Strings(names)
	name := names[len(names)-1]
	b, err := r.getSealed(name)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if "points/"+dir+"/"+m.ID != name || m.Machine != machine || m.ChunkSize < 4096 {
		return nil, fmt.Errorf("%s: manifest does not match its name", name)
	}
	return &m, nil
}

// Restore writes disk of point m to path.
func (r *Reader) Restore(m *Manifest, disk, path string) error {
	for _, d := range m.Disks {
		if d.Name != disk {
			continue
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Truncate(d.Size); err != nil {
			return err
		}
		var ids [][32]byte
		for _, ph := range d.Pages {
			var pid [32]byte
			if _, err := hex.Decode(pid[:], []byte(ph)); err != nil {
				return err
			}
			page, err := r.blob(pid)
			if err != nil {
				return err
			}
			for i := 0; i+32 <= len(page); i += 32 {
				ids = append(ids, [32]byte(page[i:i+32]))
			}
		}
		if want := (d.Size + m.ChunkSize - 1) / m.ChunkSize; int64(len(ids)) != want {
			return fmt.Errorf("disk %s: %d chunk IDs, want %d", disk, len(ids), want)
		}
		for i, id := range ids {
			if id == ([32]byte{}) {
				continue // the file is already zero there
			}
			chunk, err := r.blob(id)
			if err != nil {
				return err
			}
			if int64(len(chunk)) != min(m.ChunkSize, d.Size-int64(i)*m.ChunkSize) {
				return fmt.Errorf("chunk %d: %d bytes", i, len(chunk))
			}
			if _, err := f.WriteAt(chunk, int64(i)*m.ChunkSize); err != nil {
				return err
			}
		}
		return f.Close()
	}
	return fmt.Errorf("no disk %s", disk)
}
