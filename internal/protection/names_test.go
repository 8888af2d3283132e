package protection

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckPathName: names that become path components are refused when
// they could leave their directory, hide in a listing or read as an
// option.
func TestCheckPathName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"root", true}, {"data-1", true}, {"eth0", true}, {"a.b", true}, {"Disk_2", true},
		{strings.Repeat("d", MaxNameLen), true},
		{"", false}, {".", false}, {"..", false}, {"../etc", false}, {"a/b", false}, {"/abs", false},
		{`a\b`, false}, {"x..y", false}, {"-rf", false}, {"a\x00b", false}, {"a\nb", false},
		{"tab\there", false}, {"del\x7f", false}, {"\xff\xfe", false},
		{strings.Repeat("d", MaxNameLen+1), false},
	} {
		if err := CheckPathName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckPathName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestParseRefusesPathNames: every config name that reaches a path is
// checked at apply: disks, NICs, networks, groups, and machines.
func TestParseRefusesPathNames(t *testing.T) {
	full := readFull(t)
	for _, tc := range []struct {
		name, old, new, field string
	}{
		{"disk with a slash", "      - name: data\n", "      - name: ../../etc/data\n", "machines[0].disks[1].name"},
		{"disk named ..", "      - name: data\n", "      - name: \"..\"\n", "machines[0].disks[1].name"},
		{"disk with a newline", "      - name: data\n", "      - name: \"da\\nta\"\n", "machines[0].disks[1].name"},
		{"disk named twice", "      - name: data\n", "      - name: root\n", "machines[0].disks[1].name"},
		{"empty disk name", "      - name: data\n", "      - name: \"\"\n", "machines[0].disks[1].name"},
		{"NIC with a slash", "      - name: eth0\n        network: prod\n        address: 10.1.0.20/24\n",
			"      - name: e/0\n        network: prod\n        address: 10.1.0.20/24\n", "machines[1].nics[0].name"},
		{"network with ..", "    - name: drill\n", "    - name: \"..dri\"\n", "networks.test[0].name"},
		{"group with a slash", "      - name: frontend\n", "      - name: front/end\n", "plans[0].groups[1].name"},
		{"machine with a slash", "  - name: web\n", "  - name: w/eb\n", "machines[1].name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Count(full, tc.old) < 1 {
				t.Fatalf("anchor %q not in the document", tc.old)
			}
			doc := strings.Replace(full, tc.old, tc.new, 1)
			_, err := Parse([]byte(doc))
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("accepted: err = %v", err)
			}
			found := false
			for _, e := range flatten(t, err) {
				found = found || e.Field == tc.field
			}
			if !found {
				t.Errorf("error names no %s: %v", tc.field, err)
			}
		})
	}
}
