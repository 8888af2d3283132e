package vnet

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// CleanupNamespaces deletes every named namespace starting with prefix
// (normally Prefix) that a crashed run left behind; links, bridges and
// addresses inside go with them. A namespace whose recorded owner is
// another running process is kept, with an ErrOwned error naming the owner.
// It returns the names removed.
func CleanupNamespaces(ops Ops, prefix string) ([]string, error) {
	return cleanupNamespaces(ops, prefix, false)
}

// ForceCleanupNamespaces is CleanupNamespaces that also deletes the
// namespaces of running processes.
func ForceCleanupNamespaces(ops Ops, prefix string) ([]string, error) {
	return cleanupNamespaces(ops, prefix, true)
}

func cleanupNamespaces(ops Ops, prefix string, force bool) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var done []string
	var errs []error
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if err := Owned(nsOwnerPath(e.Name()), "netns "+e.Name()); err != nil && !force {
			errs = append(errs, err)
			continue
		}
		if err := ops.DelNS(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		slog.Info("removed leftover namespace", "netns", e.Name())
		done = append(done, e.Name())
	}
	return done, errors.Join(append(errs, dropStaleOwners(prefix))...)
}

// dropStaleOwners removes owner records of namespaces that no longer exist
// and whose owner is gone (a crash between recording and creating).
func dropStaleOwners(prefix string) error {
	recs, err := os.ReadDir(NSOwnerDir)
	if err != nil {
		return nil
	}
	var errs []error
	for _, r := range recs {
		name := r.Name()
		if !strings.HasPrefix(name, prefix) || Owned(nsOwnerPath(name), "") != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(netnsDir, name)); errors.Is(err, os.ErrNotExist) {
			if err := os.Remove(nsOwnerPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
