package vault

import (
	"bytes"
	"encoding/hex"
	"encoding/json"

	"github.com/zeebo/blake3"
)

// Plaintext objects (config, keys/*, locks/*) are stored as
//
//	<JSON body>\n<64 hex digits>\n
//
// where the hex is BLAKE3 of the body: keyed with the ID key for config (a
// MAC, checked once the password has opened a key) and unkeyed for keys and
// locks (a checksum, so a damaged key file is reported as damaged instead of
// as a wrong password).

func sumBody(key, body []byte) string {
	var h *blake3.Hasher
	if key == nil {
		h = blake3.New()
	} else {
		h, _ = blake3.NewKeyed(key)
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func encodeSigned(v any, key []byte) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := append(body, '\n')
	out = append(out, sumBody(key, body)...)
	return append(out, '\n'), nil
}

// splitSigned returns the body and its stored sum, or a corrupt error.
func splitSigned(name string, data []byte) (body []byte, sum string, err error) {
	data = bytes.TrimSuffix(data, []byte("\n"))
	i := bytes.LastIndexByte(data, '\n')
	if i < 0 || len(data)-i-1 != 64 {
		return nil, "", corrupt(name, "not a haven object (truncated?)")
	}
	return data[:i], string(data[i+1:]), nil
}

// decodeSigned checks the sum with key (nil for a plain checksum) and parses the body.
func decodeSigned(name string, data, key []byte, v any) error {
	body, sum, err := splitSigned(name, data)
	if err != nil {
		return err
	}
	if sumBody(key, body) != sum {
		return corrupt(name, "checksum mismatch")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return corrupt(name, "%v", err)
	}
	return nil
}
