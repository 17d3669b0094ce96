// Command unitgen prints backupd's systemd unit as the Debian package
// installs it (packaging/systemd's Package), for scripts/deb.sh: the
// package's unit and the one `backupd install` writes come from one
// template.
package main

import (
	"fmt"
	"os"

	"github.com/backupd/backupd/packaging/systemd"
)

func main() {
	text, err := systemd.Package().Render()
	if err != nil {
		fmt.Fprintln(os.Stderr, "unitgen:", err)
		os.Exit(1)
	}
	fmt.Print(text)
}
