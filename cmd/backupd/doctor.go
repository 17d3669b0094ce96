package main

import (
	"fmt"
	"io"
)

func cmdDoctor(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "backupd doctor: not yet implemented")
	return exitError
}
