package vault

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

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

// compressBlob returns what a blob stores of plain: its zstd frame when
// that is clearly smaller, else plain itself (flags say which).
//
// Disks hold long runs of incompressible data (media, archives, encrypted
// files) where zstd only burns CPU. After a worker meets an incompressible
// chunk, it first compresses a 2 KiB sample of the next one and compresses
// the whole chunk only if the sample shrinks. The frame is written into the
// worker's scratch buffer, valid until its next call.
func (v *Vault) compressBlob(w *worker, plain []byte) (payload []byte, flags byte) {
	payload = plain
	const sample = 2048
	var scratch []byte
	if w != nil {
		scratch = w.scratch[:0]
	}
	if w == nil || !w.incompressible || len(plain) <= 2*sample ||
		len(v.enc.EncodeAll(plain[:sample], scratch)) < sample*31/32 {
		c := v.enc.EncodeAll(plain, scratch)
		if len(c) < len(plain)*31/32 {
			payload, flags = c, flagZstd
		}
		if w != nil {
			w.scratch = c[:0]
		}
	}
	if w != nil {
		w.incompressible = flags == 0
	}
	return payload, flags
}

// openBlob authenticates, decompresses and verifies one blob read from pack.
// It decrypts in place: sealed is destroyed.
func (v *Vault) openBlob(pack string, e blobEntry, sealed []byte) ([]byte, error) {
	return v.appendBlob(nil, pack, e, sealed, v.blobHasher(e.Type))
}

// appendBlob appends a blob's plaintext to dst and verifies it against its
// ID with the keyed hasher h. The AEAD tag alone is not enough: anyone with
// the encryption key (a buggy or hostile writer) can seal any content under
// any ID. sealed is destroyed.
func (v *Vault) appendBlob(dst []byte, pack string, e blobEntry, sealed []byte, h *blake3.Hasher) ([]byte, error) {
	if uint32(len(sealed)) != e.Length {
		return nil, corrupt(pack, "blob %s truncated (%d of %d bytes)", e.ID, len(sealed), e.Length)
	}
	plain, err := openInPlace(v.key.Enc, sealed, blobAAD(e.Type, e.ID))
	if err != nil {
		return nil, corrupt(pack, "blob %s at offset %d: authentication failed", e.ID, e.Offset)
	}
	n := len(dst)
	if e.Flags&flagZstd != 0 {
		if dst, err = v.dec.DecodeAll(plain, dst); err != nil {
			return nil, corrupt(pack, "blob %s: decompress: %v", e.ID, err)
		}
	} else {
		dst = append(dst, plain...)
	}
	if uint32(len(dst)-n) != e.RawLength {
		return nil, corrupt(pack, "blob %s: %d bytes, index says %d", e.ID, len(dst)-n, e.RawLength)
	}
	if sumID(h, dst[n:]) != e.ID {
		return nil, corrupt(pack, "blob %s: content does not match its ID", e.ID)
	}
	return dst, nil
}

// hashID is a chunk's ID.
func (v *Vault) hashID(b []byte) ID { return sumID(v.key.hasher(), b) }

// pageID is a page's ID: a separate key from chunks'.
func (v *Vault) pageID(b []byte) ID { return sumID(keyed(v.key.page), b) }

// blobHasher is the keyed hasher that gives a blob of type t its ID.
func (v *Vault) blobHasher(t blobType) *blake3.Hasher {
	if t == pageBlob {
		return keyed(v.key.page)
	}
	return v.key.hasher()
}

// packBuf accumulates sealed blobs until it is large enough to upload. Its
// buffer is allocated once with room for a whole pack, so space can be
// reserved under the saver's lock and sealed into by several workers at
// once without the buffer ever moving; pending counts those writers.
type packBuf struct {
	data    []byte
	entries []blobEntry
	pending sync.WaitGroup
}

func newPackBuf(capacity int) *packBuf {
	return &packBuf{data: make([]byte, 0, capacity)}
}

// newPackBuf makes a buffer with room for a full pack plus the largest blob
// (a chunk or a page, sealed) and the header, so it never has to move.
func (v *Vault) newPackBuf() *packBuf {
	return newPackBuf(v.cfg.PackSize + max(v.cfg.ChunkSize, pageEntries*len(ID{})) + overhead + 64<<10)
}

// fits reports whether a blob of n sealed bytes fits without moving data.
func (p *packBuf) fits(n int) bool { return len(p.data)+n <= cap(p.data) }

// reserve records a blob and returns its n bytes of the buffer, to be
// filled by the caller, who must call p.pending.Done() when it has.
func (p *packBuf) reserve(t blobType, id ID, flags byte, n, raw int) []byte {
	p.entries = append(p.entries, blobEntry{Type: t, Flags: flags, ID: id,
		Offset: uint32(len(p.data)), Length: uint32(n), RawLength: uint32(raw)})
	off := len(p.data)
	p.data = p.data[:off+n]
	p.pending.Add(1)
	return p.data[off : off+n : off+n]
}

// finish appends the sealed header and its length; the pack's name is the
// BLAKE3 hash of the complete file, so 'check --read-data' can verify a whole
// pack without a key.
func (v *Vault) finishPack(p *packBuf) (ID, []byte) {
	p.pending.Wait()
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
	// Each entry takes at least its type, flags, ID and two one-byte
	// varints: a count the header cannot hold is refused before any
	// allocation (a hostile header would otherwise cost 48 bytes of
	// memory per byte of input).
	if n > uint64(len(r.b))/uint64(4+len(ID{})) {
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
