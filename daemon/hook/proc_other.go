//go:build !unix

package hook

import "os/exec"

// killGroup leaves cmd as it is: without process groups, cancellation
// kills the command itself.
func killGroup(*exec.Cmd) {}
