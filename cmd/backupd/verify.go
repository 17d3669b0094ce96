package main

import (
	"fmt"
	"io"
)

func cmdVerify(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "backupd verify: not yet implemented")
	return exitError
}
