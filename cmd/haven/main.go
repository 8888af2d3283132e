// Command haven is self-hosted site recovery: vault, agent, DNS traffic
// manager and recovery-site runtime in one binary.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:]))
}
