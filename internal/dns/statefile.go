package dns

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/haven-dr/haven/internal/atomicfile"
)

// Override is what the API changed on one endpoint. It wins over the config
// and is kept in the state file, so neither a reload nor a restart can send
// traffic back to a site that a failover took out.
type Override struct {
	Enabled  *bool `json:"enabled,omitempty"`
	Priority *int  `json:"priority,omitempty"`
	Weight   *int  `json:"weight,omitempty"`
	// TTL is a profile's (Endpoint ""), the others an endpoint's.
	TTL     *uint32   `json:"ttl,omitempty"`
	Changed time.Time `json:"changed"`
	// Generation orders changes of this endpoint across the servers of a
	// cluster (generation.go); an override without fields is a reset that
	// must still win over older overrides a peer may hold.
	Generation uint64 `json:"generation,omitempty"`
}

// empty is a reset kept for its generation: the config's values apply.
func (o Override) empty() bool {
	return o.Enabled == nil && o.Priority == nil && o.Weight == nil && o.TTL == nil
}

// stateVersion is the state file's format; a newer one is refused rather
// than misread.
const stateVersion = 1

type stateDoc struct {
	Version   int                `json:"version"`
	Overrides []EndpointOverride `json:"overrides"`
}

// EndpointOverride is one endpoint's override, as kept in the state file
// and exchanged between the servers of a cluster.
type EndpointOverride struct {
	Profile  string `json:"profile"`
	Endpoint string `json:"endpoint"`
	Override
}

// overrides maps key(profile, endpoint) to the API's change; it is replaced,
// never mutated, so a failed save leaves the served state as it was.
type overrides map[string]Override

// loadOverrides reads the state file; a missing file is an empty state, an
// unreadable or invalid one is an error (serving the config's values instead
// would silently undo a failover).
func loadOverrides(path string) (overrides, error) {
	out := overrides{}
	if path == "" {
		return out, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	} else if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	var d stateDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if d.Version != stateVersion {
		return nil, fmt.Errorf("state file %s: version %d, this haven reads %d", path, d.Version, stateVersion)
	}
	for _, o := range d.Overrides {
		if err := o.check(); err != nil {
			return nil, fmt.Errorf("state file %s: %s/%s: %w", path, o.Profile, o.Endpoint, err)
		}
		out[key(canonical(o.Profile), o.Endpoint)] = o.Override
	}
	return out, nil
}

// save writes the state file atomically: a crash leaves the old or the new
// state, never a torn one.
func (o overrides) save(path string) error {
	if path == "" {
		return nil
	}
	d := stateDoc{Version: stateVersion, Overrides: o.list()}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}

// list is the overrides in a stable order.
func (o overrides) list() []EndpointOverride {
	out := []EndpointOverride{}
	for k, v := range o {
		p, e, _ := strings.Cut(k, "\x00")
		out = append(out, EndpointOverride{Profile: p, Endpoint: e, Override: v})
	}
	slices.SortFunc(out, func(a, b EndpointOverride) int {
		return strings.Compare(a.Profile+"\x00"+a.Endpoint, b.Profile+"\x00"+b.Endpoint)
	})
	return out
}

func (o overrides) with(k string, v Override) overrides {
	next := make(overrides, len(o)+1)
	for kk, vv := range o {
		next[kk] = vv
	}
	next[k] = v
	return next
}

func (o overrides) without(k string) overrides {
	next := make(overrides, len(o))
	for kk, vv := range o {
		if kk != k {
			next[kk] = vv
		}
	}
	return next
}
