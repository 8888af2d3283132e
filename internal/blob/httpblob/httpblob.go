// Package httpblob is the client of `haven vault serve`
// (internal/vaultserve): a blob.Backend over HTTPS with a bearer token. The
// server decides what the token may do; a refusal comes back as
// blob.ErrAppendOnly, so the vault reports it instead of retrying.
package httpblob

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// ErrUnauthorized: the server does not know the token. Permanent.
var ErrUnauthorized = errors.New("vault server refused the token")

// Backend talks to one server.
type Backend struct {
	cfg    Config
	prefix blob.Prefix
	client *http.Client
}

// New makes a client; it does no network I/O.
func New(cfg Config) (*Backend, error) {
	roots, err := cfg.roots()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     time.Minute,
		TLSHandshakeTimeout: 15 * time.Second,
	}
	return &Backend{cfg: cfg, prefix: blob.Prefix(cfg.Prefix), client: &http.Client{Transport: tr}}, nil
}

// Location is the server URL and prefix, without the token.
func (b *Backend) Location() string {
	if b.cfg.Prefix == "" {
		return b.cfg.Base
	}
	return b.cfg.Base + "/" + b.cfg.Prefix
}

// Close drops idle connections.
func (b *Backend) Close() error {
	b.client.CloseIdleConnections()
	return nil
}

func (b *Backend) objectURL(name string, q url.Values) string {
	u, _ := url.Parse(b.cfg.Base)
	u.Path = "/v1/objects/" + b.prefix.Key(name)
	u.RawQuery = q.Encode()
	return u.String()
}

// do sends a request and maps the answer to the blob error contract. The
// caller closes the body of a 2xx response.
func (b *Backend) do(ctx context.Context, method, target, name string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	if method == http.MethodPut {
		req.ContentLength = int64(len(body))
		if body == nil {
			req.Body = http.NoBody
		}
	}
	req.Header.Set("Authorization", "Bearer "+b.cfg.Token)
	resp, err := b.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, blob.Unavailable(err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(string(msg))
	switch code := resp.StatusCode; {
	case code == http.StatusNotFound:
		return nil, blob.NotFound(name)
	case code == http.StatusForbidden:
		return nil, fmt.Errorf("%w (server: %s)", blob.ErrAppendOnly, text)
	case code == http.StatusUnauthorized:
		return nil, fmt.Errorf("%w: %s", ErrUnauthorized, text)
	case code == http.StatusBadRequest:
		return nil, fmt.Errorf("%w: server: %s", blob.ErrInvalidName, text)
	case code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout:
		return nil, blob.Unavailable(fmt.Errorf("%s %s: %s: %s", method, name, resp.Status, text))
	default:
		return nil, fmt.Errorf("%s %s: %s: %s", method, name, resp.Status, text)
	}
}

// Put creates name.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := blob.CheckName(name); err != nil {
		return err
	}
	if data == nil {
		data = []byte{}
	}
	resp, err := b.do(ctx, http.MethodPut, b.objectURL(name, nil), name, data)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// Get reads a range.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) ([]byte, error) {
	if err := blob.CheckName(name); err != nil {
		return nil, err
	}
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}, "length": {strconv.FormatInt(length, 10)}}
	resp, err := b.do(ctx, http.MethodGet, b.objectURL(name, q), name, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body) // a short body is an error (Content-Length)
	if err != nil {
		return nil, blob.Unavailable(err)
	}
	return data, nil
}

// Stat returns the object's size and time.
func (b *Backend) Stat(ctx context.Context, name string) (blob.Info, error) {
	if err := blob.CheckName(name); err != nil {
		return blob.Info{}, err
	}
	resp, err := b.do(ctx, http.MethodHead, b.objectURL(name, nil), name, nil)
	if err != nil {
		return blob.Info{}, err
	}
	resp.Body.Close()
	size, err1 := strconv.ParseInt(resp.Header.Get("X-Haven-Size"), 10, 64)
	mtime, err2 := time.Parse(time.RFC3339Nano, resp.Header.Get("X-Haven-Modtime"))
	if err := errors.Join(err1, err2); err != nil {
		return blob.Info{}, fmt.Errorf("stat %s: bad answer: %w", name, err)
	}
	return blob.Info{Name: name, Size: size, ModTime: mtime}, nil
}

// Delete removes name; the server refuses it unless the token is an
// admin's (and the object is older than its delete delay).
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := blob.CheckName(name); err != nil {
		return err
	}
	resp, err := b.do(ctx, http.MethodDelete, b.objectURL(name, nil), name, nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// listEntry mirrors vaultserve.Entry (the client does not import the server).
type listEntry struct {
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	End     bool      `json:"end"`
	Error   string    `json:"error"`
}

// List streams the names under prefix; a listing that ends without the
// server's end line is an error, never a silently shorter list.
func (b *Backend) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	u, _ := url.Parse(b.cfg.Base)
	u.Path = "/v1/list"
	u.RawQuery = url.Values{"prefix": {b.prefix.ListKey(prefix)}}.Encode()
	resp, err := b.do(ctx, http.MethodGet, u.String(), prefix, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e listEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("list %s: bad answer: %w", prefix, err)
		}
		switch {
		case e.Error != "":
			return blob.Unavailable(fmt.Errorf("list %s: server: %s", prefix, e.Error))
		case e.End:
			return nil
		}
		if err := fn(blob.Info{Name: b.prefix.Name(e.Name), Size: e.Size, ModTime: e.ModTime}); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return blob.Unavailable(fmt.Errorf("list %s: cut short: %v", prefix, sc.Err()))
}
