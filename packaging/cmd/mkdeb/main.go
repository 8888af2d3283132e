// Command mkdeb builds Haven's Debian package from the source tree:
//
//	go run ./packaging/cmd/mkdeb -out dist
//
// prints the path of the .deb it wrote. See docs/packaging.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/haven-dr/haven/packaging"
)

func main() {
	var o packaging.Options
	flag.StringVar(&o.OutDir, "out", "dist", "directory the .deb is written to")
	flag.StringVar(&o.Version, "version", "", "Debian version (default 0.0.0~gitDATE.COMMIT)")
	flag.StringVar(&o.Commit, "commit", "", "commit stamped into the binary (default: git rev-parse HEAD)")
	flag.StringVar(&o.Arch, "arch", "amd64", "Debian architecture (= GOARCH)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "mkdeb: no arguments expected; see -help")
		os.Exit(2)
	}
	path, err := packaging.Build(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}
