package main

import (
	"fmt"
	"io"
)

func cmdEncryption(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "backupd encryption: not yet implemented")
	return exitError
}
