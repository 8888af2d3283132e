package vnet

import "fmt"

// Mapping maps primary networks to recovery networks, with a separate map
// for test failover so a test copy always lands on an isolated network.
type Mapping struct {
	Recovery map[string]string `json:"recovery" yaml:"recovery"`
	Test     map[string]string `json:"test" yaml:"test"`
}

// Resolve returns the recovery (or, for a test failover, test) network that
// primary maps to.
func (m Mapping) Resolve(primary string, test bool) (string, error) {
	table, kind := m.Recovery, "recovery"
	if test {
		table, kind = m.Test, "test"
	}
	if n, ok := table[primary]; ok {
		return n, nil
	}
	return "", fmt.Errorf("%w: no %s mapping for primary network %q", ErrUnknown, kind, primary)
}
