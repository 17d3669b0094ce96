package main

import (
	"fmt"
	"io"
)

func cmdCompletion(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "backupd completion: not yet implemented")
	return exitError
}
