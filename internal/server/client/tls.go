package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
)

// TrustCA makes the client accept server certificates signed by the CA
// in pemFile (the server's state_dir/tls/ca.crt in tls mode auto), in
// place of the system's roots.
func (c *Client) TrustCA(pemFile string) error {
	b, err := os.ReadFile(pemFile)
	if err != nil {
		return fmt.Errorf("ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("ca file %s: no PEM certificate in it", pemFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c.hc.Transport = tr
	return nil
}

// DialWith makes the client connect through dial (a server reached in
// another network namespace, a tunnel), keeping its TLS settings.
func (c *Client) DialWith(dial func(ctx context.Context, network, addr string) (net.Conn, error)) {
	tr, ok := c.hc.Transport.(*http.Transport)
	if !ok {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.DialContext = dial
	c.hc.Transport = tr
}
