package azblob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
	"github.com/haven-dr/haven/internal/blob/azblob"
	"github.com/haven-dr/haven/internal/blob/blobopen"
	"github.com/haven-dr/haven/internal/testenv"
)

// do sends one raw request: nothing of Haven's client is in the way, so
// what is refused is refused by the service.
func do(t *testing.T, method, u string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-ms-version", "2021-12-02")
	req.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// TestAgentSASCannotDestroy: with the agent's SAS (read, create, list),
// Azurite lets the agent add and read blobs and refuses, with 403, every
// request that would delete or replace one, sent raw.
func TestAgentSASCannotDestroy(t *testing.T) {
	a := testenv.AzuriteAgentSAS(t)
	u := func(name, q string) string {
		s := a.Endpoint + "/" + a.Container + "/" + name + "?" + a.SAS
		if q != "" {
			s += "&" + q
		}
		return s
	}
	blockBlob := map[string]string{"x-ms-blob-type": "BlockBlob"}
	if code, body := do(t, "PUT", u("points/p1", ""), []byte("original"), blockBlob); code != http.StatusCreated {
		t.Fatalf("agent create: %d %s", code, body)
	}
	blockList := []byte(`<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>YWFhYQ==</Latest></BlockList>`)
	refused := []struct {
		what, method, url string
		body              []byte
		hdr               map[string]string
	}{
		{"overwrite", "PUT", u("points/p1", ""), []byte("garbage"), blockBlob},
		{"delete", "DELETE", u("points/p1", ""), nil, nil},
		{"delete with snapshots", "DELETE", u("points/p1", ""), nil, map[string]string{"x-ms-delete-snapshots": "include"}},
		{"put block", "PUT", u("points/p1", "comp=block&blockid=YWFhYQ%3D%3D"), []byte("xx"), nil},
		{"put block list", "PUT", u("points/p1", "comp=blocklist"), blockList, nil},
		{"copy over", "PUT", u("points/p1", ""), nil, map[string]string{"x-ms-copy-source": u("points/p1", "")}},
		{"metadata", "PUT", u("points/p1", "comp=metadata"), nil, map[string]string{"x-ms-meta-a": "b"}},
		{"lease", "PUT", u("points/p1", "comp=lease"), nil, map[string]string{"x-ms-lease-action": "acquire", "x-ms-lease-duration": "-1"}},
		{"delete container", "DELETE", a.Endpoint + "/" + a.Container + "?restype=container&" + a.SAS, nil, nil},
	}
	for _, r := range refused {
		if code, body := do(t, r.method, r.url, r.body, r.hdr); code != http.StatusForbidden {
			t.Errorf("agent %s: HTTP %d, want 403 (%s)", r.what, code, body)
		}
	}
	if code, body := do(t, "GET", u("points/p1", ""), nil, nil); code != http.StatusOK || body != "original" {
		t.Errorf("agent read after the attempts: %d %q", code, body)
	}
}

// TestAgentSASThroughBackend: the vault's storage opened with only the
// SAS writes, reads and lists; its Delete and overwrite fail (as the
// service's refusals, not ErrNotFound or ErrUnavailable) and lose nothing.
func TestAgentSASThroughBackend(t *testing.T) {
	ctx := context.Background()
	a := testenv.AzuriteAgentSAS(t)
	agent, err := blobopen.OpenEnv(ctx, a.URL, blob.Limits{}, a.AgentEnv)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("pack"), 1<<20) // 4 MiB: one Put Blob
	if err := agent.Put(ctx, "data/00/pack", data); err != nil {
		t.Fatalf("agent put: %v", err)
	}
	var names []string
	if err := agent.List(ctx, "data/", func(fi blob.Info) error { names = append(names, fi.Name); return nil }); err != nil || len(names) != 1 {
		t.Fatalf("agent list: %v %v", names, err)
	}
	for what, err := range map[string]error{
		"overwrite": agent.Put(ctx, "data/00/pack", []byte("garbage")),
		"delete":    agent.Delete(ctx, "data/00/pack"),
	} {
		if err == nil || errors.Is(err, blob.ErrUnavailable) || errors.Is(err, blob.ErrNotFound) || !strings.Contains(err.Error(), "403") {
			t.Errorf("agent %s: %v, want the service's 403", what, err)
		}
	}
	got, err := agent.Get(ctx, "data/00/pack", 0, -1)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the attempts: %d bytes, %v", len(got), err)
	}
}

func TestAgentSASNeedsKey(t *testing.T) {
	if _, err := azblob.AgentSAS(azblob.Config{Container: "c", Account: "a", SAS: "sv=x"}, time.Now().Add(time.Hour)); err == nil {
		t.Error("signed a SAS without the shared key")
	}
	tok, err := azblob.AgentSAS(azblob.Config{Container: "c", Account: "a", Key: testenv.AzuriteKey}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(tok)
	if q.Get("sp") != "rcl" || q.Get("sr") != "c" || q.Get("spr") != "https" {
		t.Errorf("SAS %s: want sp=rcl (read, create, list), sr=c (container), spr=https", tok)
	}
}
