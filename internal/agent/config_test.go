package agent

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const exampleConfig = `
vault: file:///srv/haven-vault
password_file: /etc/haven/password
state_dir: /var/lib/haven/agent
listen: 127.0.0.1:7717
bandwidth: 20MiB
machines:
  - name: db1
    group: shop
    provider: reflink
    disks:
      - {name: root, path: /images/db1-root.img}
      - {name: data, path: /images/db1-data.img}
    freeze: [/mnt/db1]
    hooks:
      pre: "psql -c CHECKPOINT"
      timeout: 30s
    policy:
      frequency: 15s
      app_frequency: 5m
      rpo_alert: 1m
      retention: {keep_within: 2h, keep_hourly: 24, keep_daily: 7}
  - name: web1
    group: shop
    provider: none
    disks: [{name: root, path: /images/web1.img}]
`

func TestConfigExample(t *testing.T) {
	c, err := ParseConfig(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	m := c.Machines[0]
	if c.UploadLimit() != 20<<20 || m.Policy.Frequency != 15*time.Second || m.Policy.Retention.Within != 2*time.Hour ||
		m.Policy.Retention.Daily != 7 || m.Hooks.Timeout != 30*time.Second || m.CloneDir != "/images/.haven-clones" {
		t.Fatalf("parsed %+v", c)
	}
	if w := c.Machines[1]; w.Policy.Frequency != 5*time.Minute || w.Policy.RPOAlert != 10*time.Minute {
		t.Fatalf("defaults: %+v", w.Policy)
	}
}

func TestConfigErrors(t *testing.T) {
	base := "vault: /v\nmachines:\n  - name: m\n    disks: [{name: d, path: /d.img}]\n"
	for _, tc := range []struct{ extra, want string }{
		{"", "provider: missing"},
		{"    provider: fast\n", "want reflink"},
		{"    provider: none\n    policy: {frequency: 5s}\n", "below the minimum"},
		{"    provider: fsfreeze\n", "needs freeze"},
		{"    provider: hooks\n", "needs hooks.pre"},
		{"    provider: none\n    policy: {frequency: 1m, app_frequency: 30s}\n", "app_frequency"},
		{"    provider: none\n    colour: blue\n", "colour"},
		{"    provider: none\nlisten: 0.0.0.0:7717\n", "loopback"},
		{"    provider: reflink\n    freeze: [/]\n", "holds clone_dir"},
	} {
		_, err := ParseConfig(base + tc.extra)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.extra, err, tc.want)
		}
	}
}
