package vnet

import (
	"errors"
	"log/slog"
	"os"
	"strings"
)

// CleanupNamespaces deletes every named namespace starting with prefix
// (normally Prefix) that a crashed run left behind; links, bridges and
// addresses inside go with them. It returns the names removed.
func CleanupNamespaces(ops Ops, prefix string) ([]string, error) {
	ents, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if err := ops.DelNS(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		slog.Info("removed leftover namespace", "netns", e.Name())
		done = append(done, e.Name())
	}
	return done, errors.Join(errs...)
}
