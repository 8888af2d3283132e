package vault

import (
	"context"

	"github.com/haven-dr/haven/internal/blob"
)

// Stats summarises the vault's size.
type Stats struct {
	Machines     int     `json:"machines"`
	Points       int     `json:"points"`
	LogicalBytes int64   `json:"logical_bytes"` // sum of all points' disk sizes
	UniqueBytes  int64   `json:"unique_bytes"`  // plaintext of stored chunks
	StoredBytes  int64   `json:"stored_bytes"`  // all objects, as stored
	Objects      int     `json:"objects"`
	DedupRatio   float64 `json:"dedup_ratio"` // logical / stored
}

// Stats reads all manifests and lists all objects.
func (v *Vault) Stats(ctx context.Context) (*Stats, error) {
	points, err := v.Points(ctx, "")
	if err != nil {
		return nil, err
	}
	idx, err := v.loadIndex(ctx, forRead)
	if err != nil {
		return nil, err
	}
	st := &Stats{Points: len(points)}
	machines := map[string]bool{}
	for _, p := range points {
		machines[p.Machine] = true
		st.LogicalBytes += p.Size()
	}
	st.Machines = len(machines)
	for _, l := range idx.blobs {
		if l.Type == dataBlob {
			st.UniqueBytes += int64(l.RawLength)
		}
	}
	err = v.be.List(ctx, "", func(fi blob.Info) error {
		st.Objects++
		st.StoredBytes += fi.Size
		return nil
	})
	if st.StoredBytes > 0 {
		st.DedupRatio = float64(st.LogicalBytes) / float64(st.StoredBytes)
	}
	return st, err
}
