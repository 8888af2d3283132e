package vault

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"
)

// blobType says what a blob in a pack holds.
type blobType byte

const (
	dataBlob blobType = 0 // a disk chunk
	pageBlob blobType = 1 // a page of a disk's chunk-ID list
)

const flagZstd = 1

// blobEntry locates one sealed blob inside a pack.
type blobEntry struct {
	Type      blobType
	Flags     byte
	ID        ID
	Offset    uint32
	Length    uint32 // sealed length in the pack
	RawLength uint32 // plaintext length
}

var packHeaderAAD = []byte("haven-pack-header")

const packMagic = "HVP1"

func blobAAD(t blobType, id ID) []byte {
	return append([]byte{byte(t)}, id[:]...)
}

// sealBlob compresses (when that helps) and encrypts one blob.
func (v *Vault) sealBlob(t blobType, id ID, plain []byte) (sealed []byte, flags byte) {
	c := v.enc.EncodeAll(plain, make([]byte, 0, len(plain)/2+64))
	payload := plain
	if len(c) < len(plain) {
		payload, flags = c, flagZstd
	}
	return seal(v.key.Enc, make([]byte, 0, len(payload)+overhead), payload, blobAAD(t, id)), flags
}

// openBlob authenticates, decompresses and verifies one blob read from pack.
func (v *Vault) openBlob(pack string, e blobEntry, sealed []byte) ([]byte, error) {
	plain, err := v.openBlobAEAD(pack, e, sealed)
	if err == nil && v.hashID(plain) != e.ID {
		return nil, corrupt(pack, "blob %s: content does not match its ID", e.ID)
	}
	return plain, err
}

// openBlobAEAD is openBlob without recomputing the keyed hash. The AEAD tag
// already authenticates the plaintext together with its ID (the AAD), so
// restore, which writes gigabytes, skips the second hash; check keeps it.
func (v *Vault) openBlobAEAD(pack string, e blobEntry, sealed []byte) ([]byte, error) {
	if uint32(len(sealed)) != e.Length {
		return nil, corrupt(pack, "blob %s truncated (%d of %d bytes)", e.ID, len(sealed), e.Length)
	}
	plain, err := open(v.key.Enc, sealed, blobAAD(e.Type, e.ID))
	if err != nil {
		return nil, corrupt(pack, "blob %s at offset %d: authentication failed", e.ID, e.Offset)
	}
	if e.Flags&flagZstd != 0 {
		if plain, err = v.dec.DecodeAll(plain, make([]byte, 0, e.RawLength)); err != nil {
			return nil, corrupt(pack, "blob %s: decompress: %v", e.ID, err)
		}
	}
	if uint32(len(plain)) != e.RawLength {
		return nil, corrupt(pack, "blob %s: %d bytes, index says %d", e.ID, len(plain), e.RawLength)
	}
	return plain, nil
}

func (v *Vault) hashID(b []byte) ID {
	h := v.key.hasher()
	h.Write(b)
	var id ID
	copy(id[:], h.Sum(nil))
	return id
}

// packBuf accumulates sealed blobs until it is large enough to upload.
type packBuf struct {
	data    []byte
	entries []blobEntry
}

func (p *packBuf) add(t blobType, id ID, sealed []byte, flags byte, raw int) {
	p.entries = append(p.entries, blobEntry{Type: t, Flags: flags, ID: id,
		Offset: uint32(len(p.data)), Length: uint32(len(sealed)), RawLength: uint32(raw)})
	p.data = append(p.data, sealed...)
}

// finish appends the sealed header and its length; the pack's name is the
// BLAKE3 hash of the complete file, so 'check --read-data' can verify a whole
// pack without a key.
func (v *Vault) finishPack(p *packBuf) (ID, []byte) {
	hdr := encodePackHeader(p.entries)
	data := seal(v.key.Enc, p.data, hdr, packHeaderAAD)
	data = binary.LittleEndian.AppendUint32(data, uint32(len(data)-len(p.data)))
	return ID(blake3.Sum256(data)), data
}

func packName(id ID) string {
	s := id.String()
	return "data/" + s[:2] + "/" + s
}

func encodePackHeader(entries []blobEntry) []byte {
	b := append([]byte(packMagic), binary.AppendUvarint(nil, uint64(len(entries)))...)
	for _, e := range entries {
		b = append(b, byte(e.Type), e.Flags)
		b = append(b, e.ID[:]...)
		b = binary.AppendUvarint(b, uint64(e.Length))
		b = binary.AppendUvarint(b, uint64(e.RawLength))
	}
	return b
}

// parsePack verifies a whole pack file and returns its blob entries.
func (v *Vault) parsePack(name string, data []byte) ([]blobEntry, error) {
	if len(data) < 4+overhead {
		return nil, corrupt(name, "too short (%d bytes)", len(data))
	}
	hlen := int(binary.LittleEndian.Uint32(data[len(data)-4:]))
	if hlen < overhead || hlen > len(data)-4 {
		return nil, corrupt(name, "bad header length %d", hlen)
	}
	hdr, err := open(v.key.Enc, data[len(data)-4-hlen:len(data)-4], packHeaderAAD)
	if err != nil {
		return nil, corrupt(name, "header authentication failed")
	}
	entries, err := decodePackHeader(hdr)
	if err != nil {
		return nil, corrupt(name, "header: %v", err)
	}
	end := uint32(len(data) - 4 - hlen)
	var off uint32
	for i := range entries {
		entries[i].Offset = off
		off += entries[i].Length
	}
	if off != end {
		return nil, corrupt(name, "header lists %d bytes of blobs, pack has %d", off, end)
	}
	return entries, nil
}

func decodePackHeader(b []byte) ([]blobEntry, error) {
	if len(b) < 4 || string(b[:4]) != packMagic {
		return nil, errors.New("bad magic")
	}
	r := &byteReader{b: b[4:]}
	n := r.uvarint()
	if n > uint64(len(b)) {
		return nil, fmt.Errorf("implausible blob count %d", n)
	}
	entries := make([]blobEntry, n)
	for i := range entries {
		e := &entries[i]
		e.Type, e.Flags = blobType(r.byte()), r.byte()
		r.read(e.ID[:])
		e.Length, e.RawLength = uint32(r.uvarint()), uint32(r.uvarint())
	}
	return entries, r.err
}

// byteReader decodes the binary formats; the first error sticks.
type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) fail() {
	if r.err == nil {
		r.err = errors.New("unexpected end of data")
	}
	r.b = nil
}

func (r *byteReader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *byteReader) read(dst []byte) {
	if len(r.b) < len(dst) {
		r.fail()
		return
	}
	copy(dst, r.b)
	r.b = r.b[len(dst):]
}

func (r *byteReader) uvarint() uint64 {
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return x
}
