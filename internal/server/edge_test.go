package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haven-dr/haven/internal/vnet/wg"
)

func loadDoc(t *testing.T, doc string) (*Config, error) {
	p := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(p, []byte("vault: file:///v\n"+doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return LoadConfig(p)
}

// TestEdgeAndTunnelsConfig: edge as a namespace or an interface, tunnels
// with their keys and peers; what cannot work is refused at start.
func TestEdgeAndTunnelsConfig(t *testing.T) {
	pub, _ := wg.PublicKey(wg.GenerateKey())
	for doc, want := range map[string]string{
		"edge: hvab12cd-inet\n":                          "hvab12cd-inet",
		"edge: {interface: eth0}\n":                      "@eth0",
		"edge: {interface: br0, netns: hvab12cd-host}\n": "hvab12cd-host@br0",
		"": "",
	} {
		c, err := loadDoc(t, doc)
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if got := c.Edge.String(); got != want {
			t.Errorf("%q: edge %q, want %q", doc, got, want)
		}
	}
	tunnel := "tunnels:\n  - name: office\n    private_key_file: /etc/haven/wg.key\n    peers: [{public_key: \"" + pub + "\", allowed_ips: [192.168.50.0/24], persistent_keepalive: 25s}]\n"
	c, err := loadDoc(t, "edge: {interface: eth0}\n"+tunnel)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Tunnels) != 1 || c.Tunnels[0].Peers[0].AllowedIPs[0].String() != "192.168.50.0/24" || c.Tunnels[0].Peers[0].Keepalive.Seconds() != 25 {
		t.Fatalf("tunnels = %+v", c.Tunnels)
	}
	for doc, want := range map[string]string{
		tunnel: "tunnels need an edge",
		"edge: {interface: eth0}\n" + strings.Replace(tunnel, pub, "nokey", 1): "public_key",
		"edge: {interface: eth0@x}\n":                                          "interface name",
		"edge: {interface: averyveryverylongname}\n":                           "15 bytes",
	} {
		if _, err := loadDoc(t, doc); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want it to mention %q", doc, err, want)
		}
	}
}
