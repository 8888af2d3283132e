package dns

import "gopkg.in/yaml.v3"

// TSIGKey is a shared secret for signing zone transfers and NOTIFY (RFC 8945).
type TSIGKey struct {
	Name      string `yaml:"name"`      // key name, the same on the secondary
	Algorithm string `yaml:"algorithm"` // hmac-sha256 (default), hmac-sha384, hmac-sha512
	Secret    string `yaml:"secret"`    // base64

	at pos `yaml:"-"`
}

// Transfer makes the server a primary (or hidden primary) for every zone:
// secondaries transfer the zones with AXFR/IXFR and are told of each change
// by NOTIFY.
type Transfer struct {
	Key    string   `yaml:"key"`    // TSIG key every transfer and NOTIFY is signed with
	Allow  []string `yaml:"allow"`  // source prefixes (or addresses) allowed to transfer
	Notify []string `yaml:"notify"` // secondaries' host:port, told of every change

	at pos `yaml:"-"`
}

// DNSSEC turns on online signing of every zone.
type DNSSEC struct {
	Algorithm string `yaml:"algorithm"` // ecdsap256sha256 (default) or ed25519
	KeyDir    string `yaml:"key_dir"`   // default <config name>.dnssec next to the config

	at pos `yaml:"-"`
}

func (k *TSIGKey) UnmarshalYAML(n *yaml.Node) error {
	type plain TSIGKey
	return decodeMapping(n, (*plain)(k), &k.at, "tsig_key")
}

func (x *Transfer) UnmarshalYAML(n *yaml.Node) error {
	type plain Transfer
	return decodeMapping(n, (*plain)(x), &x.at, "zone_transfer")
}

func (d *DNSSEC) UnmarshalYAML(n *yaml.Node) error {
	type plain DNSSEC
	return decodeMapping(n, (*plain)(d), &d.at, "dnssec")
}
