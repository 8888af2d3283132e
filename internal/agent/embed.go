package agent

import (
	"fmt"

	"github.com/haven-dr/haven/internal/vault"
)

// NewWithVault builds an agent on a vault the caller already opened: the
// orchestrator replicates the machines it runs at the recovery site back
// into the vault (reprotect) with the same code as `haven agent`.
func NewWithVault(cfg *Config, v *vault.Vault) (*Agent, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return newAgent(cfg, v), nil
}
