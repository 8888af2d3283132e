package dns

import (
	"path/filepath"
	"strings"
)

// serverFiles are the files the server keeps or reads besides its config.
type serverFiles struct {
	state     string // API changes; "" keeps them in memory only
	token     string // API bearer token
	cert, key string // API TLS; "" serves plain HTTP
}

// compileFiles resolves the file options; the state and token files default
// to siblings of the config file (dns.yaml: dns.state.json, dns.api-token).
func compileFiles(e *errs, c *Config) serverFiles {
	f := serverFiles{state: c.path(c.StateFile), token: c.path(c.APITokenFile),
		cert: c.path(c.APITLSCert), key: c.path(c.APITLSKey)}
	if c.file != "" {
		base := strings.TrimSuffix(c.file, filepath.Ext(c.file))
		f.state = orDefault(f.state, base+".state.json")
		f.token = orDefault(f.token, base+".api-token")
	}
	if (f.cert == "") != (f.key == "") {
		e.add(c.at.lineOf("api_tls_cert"), "api_tls_cert", "api_tls_cert and api_tls_key go together")
	}
	if f.cert != "" && c.API == "" {
		e.add(c.at.lineOf("api_tls_cert"), "api_tls_cert", "set without api")
	}
	return f
}
