package main

// exitCode maps an error to the documented exit code table (README, "Exit codes").
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	return 1
}
