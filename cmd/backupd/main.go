// Command backupd is the backupd service and its command line: `run`
// runs the service in the foreground; status, backup, history and devices
// talk to the running service over its local API, and read the history
// directly when it is not running.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK        = 0
	exitError     = 1
	exitUsage     = 2
	exitNoDaemon  = 3 // the daemon is not running
	exitFailed    = 4 // the backup failed or was skipped
	exitBadConfig = 5 // the configuration file is wrong
	// exitInterrupted: Ctrl-C (or SIGTERM) stopped the command; 128+2,
	// what a shell reports for a command SIGINT ends.
	exitInterrupted = 130
)

func main() {
	// One context for every command: Ctrl-C or a service manager's
	// SIGTERM ends it, and each command stops cleanly on it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs one command line without signal handling (the tests' entry).
func run(args []string, stdout, stderr io.Writer) int {
	return dispatch(context.Background(), args, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: backupd COMMAND [ARGS]\n\nbackupd backs up the iPhones plugged into this computer.\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %-44s %s\n", c.name, c.args, c.does)
	}
	fmt.Fprintf(w, "  %-10s %-44s %s\n", "version", "", "print the version")
	fmt.Fprintf(w, "  %-10s %-44s %s\n", "help", "", "print this help")
	fmt.Fprintf(w, `
Every command takes --config PATH (default %s,
or $BACKUPD_CONFIG); a missing file means the defaults. "backupd COMMAND -h"
lists a command's flags.

Exit codes:
  0  ok
  1  error; also: verify found a backup incomplete, doctor found a
     problem, extract could not read a file (each is listed), a wrong
     backup password (wrong_backup_password)
  2  usage: unknown command or flag, bad arguments
  3  the daemon is not running: status, history and devices print what
     they can find without it, then exit 3; backup and encryption need
     it (verify and doctor work the same either way)
  4  the backup failed or was refused (backup), or the iPhone refused
     the change (encryption); the cause and its fix are printed
  5  bad configuration: the file, line and key are printed; the daemon
     does not start
  130  interrupted (Ctrl-C): the command stopped; a backup it asked for
     goes on in the service
`, defaultConfigPath())
}
