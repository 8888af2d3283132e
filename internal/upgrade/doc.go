// Package upgrade holds no code: its tests keep Haven's upgrade promises
// (docs/upgrade.md). testdata/fixture is a state database (SQLite, and a
// PostgreSQL dump of the same run), the server's token hashes, a small
// vault and a recorded agent↔server exchange, all written by a release;
// every later build must open and migrate them, restore the vault's
// points byte for byte and accept that release's agents.
//
// Regenerate the fixture at release time (as root, with PostgreSQL
// installed) and commit it:
//
//	HAVEN_WRITE_FIXTURES=1 go test -count=1 -run TestWriteUpgradeFixtures ./internal/upgrade/
package upgrade
