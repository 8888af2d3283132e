package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

// TestVaultServeKilledMidUpload: `haven vault serve` SIGKILLed while a
// pack upload is half-way leaves no object, complete or partial, neither
// in a listing after the restart nor as a file in its directory.
func TestVaultServeKilledMidUpload(t *testing.T) {
	s := newServedVault(t)
	agentTok, err := os.ReadFile(s.agentTok)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(filepath.Join(s.tlsDir, "ca.crt"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	const size = 64 << 20
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", "https://"+s.addr+"/v1/objects/site-a/data/ab/halfway", pr)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(agentTok)))
	done := make(chan error, 1)
	go func() {
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	chunk := make([]byte, 1<<20)
	for i := range size / 2 / len(chunk) {
		if _, err := pw.Write(chunk); err != nil {
			t.Fatalf("upload stopped after %d MiB: %v", i, err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let the server read what was sent
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	pw.CloseWithError(io.ErrUnexpectedEOF)
	if err := <-done; err == nil {
		t.Fatal("the upload to a killed server succeeded")
	}

	s.start(t)
	b := openEnv(t, s.env(s.agentTok))
	if _, err := b.Stat(t.Context(), "data/ab/halfway"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("stat of the interrupted upload after restart: %v, want not found", err)
	}
	filepath.WalkDir(s.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("file left in the store by the killed upload: %s", p)
		}
		return nil
	})
	// The server still works after the kill.
	if err := b.Put(t.Context(), "data/ab/halfway", []byte("whole")); err != nil {
		t.Fatalf("upload after restart: %v", err)
	}
}
