package blob

import "strings"

// Prefix maps object names to keys under an optional prefix inside a
// container or bucket ("site-a" stores "config" as "site-a/config"). Every
// remote backend shares it, so they agree on where a vault lives.
type Prefix string

// Key is the stored key of an object name.
func (p Prefix) Key(name string) string {
	if p == "" {
		return name
	}
	return string(p) + "/" + name
}

// ListKey is the key prefix to list for an object-name prefix; the empty
// name prefix lists only what is under the prefix, never its neighbours
// ("site-a/", not "site-a" which would also match "site-ab/").
func (p Prefix) ListKey(prefix string) string {
	if p != "" && prefix == "" {
		return string(p) + "/"
	}
	return p.Key(prefix)
}

// Name is the object name of a stored key.
func (p Prefix) Name(key string) string {
	if p == "" {
		return key
	}
	return strings.TrimPrefix(key, string(p)+"/")
}
