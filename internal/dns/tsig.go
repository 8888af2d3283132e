package dns

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"time"

	"github.com/miekg/dns"
)

// tsigProvider checks and makes TSIG MACs with the keys of the table that
// is current at the time of the message, so a reload changes keys without
// reopening sockets.
type tsigProvider struct{ s *Server }

func (p tsigProvider) mac(t *dns.TSIG) (hash.Hash, error) {
	k, ok := p.s.table.Load().tsig[canonical(t.Hdr.Name)]
	if !ok {
		return nil, dns.ErrSecret
	}
	if dns.CanonicalName(t.Algorithm) != k.alg {
		return nil, dns.ErrKeyAlg
	}
	raw, err := base64.StdEncoding.DecodeString(k.secret)
	if err != nil {
		return nil, err
	}
	switch k.alg {
	case dns.HmacSHA384:
		return hmac.New(sha512.New384, raw), nil
	case dns.HmacSHA512:
		return hmac.New(sha512.New, raw), nil
	}
	return hmac.New(sha256.New, raw), nil
}

func (p tsigProvider) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	h, err := p.mac(t)
	if err != nil {
		return nil, err
	}
	h.Write(msg)
	return h.Sum(nil), nil
}

func (p tsigProvider) Verify(msg []byte, t *dns.TSIG) error {
	b, err := p.Generate(msg, t)
	if err != nil {
		return err
	}
	mac, err := hex.DecodeString(t.MAC)
	if err != nil {
		return err
	}
	if !hmac.Equal(b, mac) {
		return dns.ErrSig
	}
	return nil
}

// signedBy reports whether a request carries a TSIG that verified with key
// (the key the zone_transfer section names).
func signedBy(w dns.ResponseWriter, r *dns.Msg, key tsigKey) bool {
	ts := r.IsTsig()
	return ts != nil && w.TsigStatus() == nil && canonical(ts.Hdr.Name) == key.name
}

// signReply signs the reply to a signed request with the request's key, as
// RFC 8945 requires; a request whose TSIG failed gets an unsigned reply.
func signReply(w dns.ResponseWriter, r, m *dns.Msg) {
	if ts := r.IsTsig(); ts != nil && w.TsigStatus() == nil {
		m.SetTsig(ts.Hdr.Name, ts.Algorithm, ts.Fudge, time.Now().Unix())
	}
}
