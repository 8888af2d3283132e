package dns

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/httpauth"
)

// The API's token and TLS, against the real server's listener.

func rawGet(t *testing.T, method, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(`{"enabled":false}`))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAPIToken: the token is created at the first start (0600, next to the
// config); /v1 without it or with a wrong one is 401 and changes nothing.
func TestAPIToken(t *testing.T) {
	path := writeConfig(t, stateConfig)
	s := startFrom(t, path)
	tokenFile := filepath.Join(filepath.Dir(path), "dns.api-token")
	fi, err := os.Stat(tokenFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	token, err := httpauth.ReadTokenFile(tokenFile)
	if err != nil || len(token) < 32 {
		t.Fatalf("token %q, %v", token, err)
	}
	base := s.APIURL()
	ep := base + "/v1/profiles/app.example.test/endpoints/primary"
	for _, tc := range []struct {
		method, url, token string
		want               int
	}{
		{"GET", base + "/v1/profiles", "", 401},
		{"GET", base + "/v1/profiles", "wrong-token-wrong-token", 401},
		{"GET", base + "/v1/profiles", token + "x", 401},
		{"PATCH", ep, "", 401},
		{"POST", base + "/v1/reload", "", 401},
		{"GET", base + "/v1/profiles/app.example.test/answer", "", 401},
		{"PATCH", ep, "wrong-token-wrong-token", 401},
		{"GET", base + "/healthz", "", 200},
		{"GET", base + "/metrics", "", 200}, // loopback API
		{"GET", base + "/v1/profiles", token, 200},
	} {
		if got := rawGet(t, tc.method, tc.url, tc.token); got != tc.want {
			t.Errorf("%s %s token %q: %d, want %d", tc.method, tc.url, tc.token, got, tc.want)
		}
	}
	if got := answerA(t, s); got != "127.0.0.1" {
		t.Fatalf("a refused PATCH changed the answer: %q", got)
	}
	noToken, _ := NewClient(base, ClientOptions{})
	if _, err := noToken.Profiles(context.Background()); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("client without token: %v", err)
	}
	if got := rawGet(t, "PATCH", ep, token); got != 200 || answerA(t, s) != "127.0.0.2" {
		t.Fatalf("PATCH with the token: %d", got)
	}

	// The token survives a restart (not regenerated) and a rotated file is
	// read on reload.
	s.Close()
	s = startFrom(t, path)
	if again, _ := httpauth.ReadTokenFile(tokenFile); again != token {
		t.Fatal("token regenerated at restart")
	}
	before := apiClient(t, s) // made before the rotation: reads the file at each call
	rotated := strings.Repeat("r", 40)
	if err := os.WriteFile(tokenFile, []byte(rotated+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.ReloadFile(); err != nil {
		t.Fatal(err)
	}
	if rawGet(t, "GET", s.APIURL()+"/v1/profiles", token) != 401 || rawGet(t, "GET", s.APIURL()+"/v1/profiles", rotated) != 200 {
		t.Fatal("rotated token not in effect after reload")
	}
	if _, err := before.Profiles(context.Background()); err != nil {
		t.Fatalf("client made before the rotation: %v", err)
	}
}

// TestMetricsNeedTokenOffLoopback: an API on a wildcard address asks for
// the token on /metrics too (the test still connects over loopback).
func TestMetricsNeedTokenOffLoopback(t *testing.T) {
	y := strings.Replace(stateConfig, "api: 127.0.0.1:0", "api: 0.0.0.0:0", 1)
	s := startFrom(t, writeConfig(t, y))
	_, port, _ := net.SplitHostPort(s.APIAddr())
	base := "http://127.0.0.1:" + port
	token, err := httpauth.ReadTokenFile(s.table.Load().files.token)
	if err != nil {
		t.Fatal(err)
	}
	if got := rawGet(t, "GET", base+"/metrics", ""); got != 401 {
		t.Fatalf("/metrics without token: %d", got)
	}
	if got := rawGet(t, "GET", base+"/metrics", token); got != 200 {
		t.Fatalf("/metrics with token: %d", got)
	}
	if got := rawGet(t, "GET", base+"/healthz", ""); got != 200 {
		t.Fatalf("/healthz: %d", got)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "haven dns test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	write := func(p, typ string, b []byte) {
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(certFile, "CERTIFICATE", der)
	write(keyFile, "EC PRIVATE KEY", kb)
	return certFile, keyFile
}

// TestAPITLS: with api_tls_cert/key the API speaks only HTTPS; the client
// trusts it through CAFile, and refuses it without.
func TestAPITLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	y := strings.Replace(stateConfig, "api: 127.0.0.1:0\n", "api: 127.0.0.1:0\napi_tls_cert: api.crt\napi_tls_key: "+key+"\n", 1)
	path := filepath.Join(dir, "dns.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startFrom(t, path)
	if !strings.HasPrefix(s.APIURL(), "https://") {
		t.Fatalf("API URL %s", s.APIURL())
	}
	tokenFile := s.table.Load().files.token
	ctx := context.Background()
	c, err := NewClient(s.APIURL(), ClientOptions{TokenFile: tokenFile, CAFile: cert})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetEnabled(ctx, "app.example.test", "primary", false); err != nil {
		t.Fatal(err)
	}
	if got := answerA(t, s); got != "127.0.0.2" {
		t.Fatalf("after the change over TLS: %q", got)
	}
	untrusting, _ := NewClient(s.APIURL(), ClientOptions{TokenFile: tokenFile})
	if _, err := untrusting.Profiles(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client without the CA: %v", err)
	}
	plain, _ := NewClient("http://"+s.APIAddr(), ClientOptions{TokenFile: tokenFile})
	if _, err := plain.Profiles(ctx); err == nil {
		t.Fatal("plain HTTP accepted on the TLS API")
	}
	noToken, _ := NewClient(s.APIURL(), ClientOptions{CAFile: cert})
	if _, err := noToken.Profiles(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("TLS without token: %v", err)
	}
}

// TestClientTimeout: a peer that accepts and never answers cannot hold a
// call whose context has no deadline.
func TestClientTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // hold every connection open until the listener closes
		var held []net.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	c, err := NewClient(l.Addr().String(), ClientOptions{Token: strings.Repeat("t", 32), Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Profiles(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the call's deadline", err)
		}
	case <-time.After(time.Minute): // a safety net for the old client, not a measurement
		t.Fatal("the call is still held: the client has no timeout")
	}
}

// TestConfigClientOptions: `haven dns status --config` finds the API from
// the server's own config (wildcard host → loopback, token and TLS files).
func TestConfigClientOptions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dns.yml")
	y := strings.Replace(stateConfig, "api: 127.0.0.1:0\n", "api: 0.0.0.0:8053\napi_tls_cert: api.crt\napi_tls_key: api.key\n", 1)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	base, o, err := ConfigClientOptions(cfg)
	if err != nil || base != "https://127.0.0.1:8053" || o.TokenFile != filepath.Join(dir, "dns.api-token") ||
		o.CAFile != filepath.Join(dir, "api.crt") {
		t.Fatalf("%s %+v %v", base, o, err)
	}
}
