// Package vaultprof holds Go benchmarks of the vault's snapshot and restore
// on the benchmark image, so `go test -bench -cpuprofile` and `go tool
// pprof` can show where the time of bench/vault/run.sh goes. It has no
// tests; `go test ./...` builds it and runs nothing.
package vaultprof
