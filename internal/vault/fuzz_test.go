package vault

import (
	"testing"
)

// The decoders read what storage hands back, which may be anything: they
// must return an error, never panic or allocate without bound.

func FuzzDecodeIndex(f *testing.F) {
	f.Add(encodeIndex(map[ID][]blobEntry{{1}: {{Type: dataBlob, ID: ID{2}, Offset: 0, Length: 40, RawLength: 16384}}}))
	f.Add([]byte("HVX1\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeIndex("index/fuzz", b, newIndex())
	})
}

func FuzzDecodePackHeader(f *testing.F) {
	f.Add(encodePackHeader([]blobEntry{{Type: pageBlob, Flags: flagZstd, ID: ID{3}, Length: 99, RawLength: 32768}}))
	f.Add([]byte("HVP1\x80\x80\x80\x80\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodePackHeader(b)
	})
}

func FuzzDecodeSigned(f *testing.F) {
	good, _ := encodeSigned(Config{Version: 1, ChunkSize: 16384, PackSize: 1 << 23}, nil)
	f.Add(good)
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		decodeSigned("config", b, nil, &c)
		peekConfigVersion(b)
	})
}

func FuzzParsePack(f *testing.F) {
	v, _ := testVaultF(f)
	pb := newPackBuf(1 << 10)
	id := v.hashID([]byte("chunk"))
	payload, flags := v.compressBlob(nil, []byte("chunk"))
	sealTo(v.key.Enc, pb.reserve(dataBlob, id, flags, len(payload)+overhead, 5), payload, blobAAD(dataBlob, id))
	pb.pending.Done()
	_, data := v.finishPack(pb)
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := v.parsePack("data/fuzz", b)
		if err != nil {
			return
		}
		for _, e := range entries {
			v.openBlob("data/fuzz", e, b[e.Offset:e.Offset+e.Length])
		}
	})
}
