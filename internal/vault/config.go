package vault

import (
	"encoding/json"
	"fmt"
	"time"
)

// FormatVersion is the on-storage format new vaults get. Version 2 split the
// keyed-hash domains and hid machine names; a version-1 vault is still read
// and written as version 1, since its IDs and names are fixed by its data.
const FormatVersion = 2

// OldestFormatVersion is the oldest format this code opens.
const OldestFormatVersion = 1

const configName = "config"

// DefaultChunkSize was chosen by measurement (docs/vault-format.md, "Chunk
// size"): small enough that scattered 4 KiB writes re-store little data,
// large enough to keep the per-chunk index small.
const DefaultChunkSize = 16 << 10

// DefaultPackSize is the size at which a pack is closed and uploaded.
const DefaultPackSize = 8 << 20

// Config is the vault's public configuration (stored in the clear, MACed).
type Config struct {
	Version   int       `json:"version"`
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	ChunkSize int       `json:"chunk_size"`
	PackSize  int       `json:"pack_size"`
}

func (c *Config) validate() error {
	if c.ChunkSize < 4096 || c.ChunkSize > 16<<20 || c.ChunkSize%4096 != 0 {
		return fmt.Errorf("chunk size %d: must be a multiple of 4096 between 4 KiB and 16 MiB", c.ChunkSize)
	}
	if c.PackSize < c.ChunkSize*2 || c.PackSize > 1<<30 {
		return fmt.Errorf("pack size %d: must be between two chunks and 1 GiB", c.PackSize)
	}
	return nil
}

// peekConfigVersion reads the version before any key is available, so a vault
// of a newer format is refused with a clear error instead of a wrong-password one.
func peekConfigVersion(data []byte) (int, error) {
	body, _, err := splitSigned(configName, data)
	if err != nil {
		return 0, err
	}
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return 0, corrupt(configName, "%v", err)
	}
	return v.Version, nil
}
