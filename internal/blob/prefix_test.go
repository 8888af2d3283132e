package blob

import "testing"

func TestPrefix(t *testing.T) {
	for _, c := range []struct {
		p                     Prefix
		name, key, list, back string
	}{
		{"", "data/ab/x", "data/ab/x", "data/ab/x", "data/ab/x"},
		{"site-a", "config", "site-a/config", "site-a/config", "config"},
		{"site-a", "", "site-a/", "site-a/", ""},
	} {
		if got := c.p.Key(c.name); c.name != "" && got != c.key {
			t.Errorf("%q.Key(%q) = %q, want %q", c.p, c.name, got, c.key)
		}
		if got := c.p.ListKey(c.name); got != c.list {
			t.Errorf("%q.ListKey(%q) = %q, want %q", c.p, c.name, got, c.list)
		}
		if got := c.p.Name(c.p.Key(c.name)); c.name != "" && got != c.back {
			t.Errorf("%q.Name(Key(%q)) = %q", c.p, c.name, got)
		}
	}
}
