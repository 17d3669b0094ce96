// Command backupd is the backupd service and its command line. For now only
// "version" and "help" work; the other commands are listed so that the
// usage says where the tool is heading, and each says it is not there yet.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one line of the usage.
type command struct{ name, does string }

// planned lists the commands design.md describes, in its order.
func planned() []command {
	return []command{
		{"run", "run the service in the foreground"},
		{"install", "install backupd as a system service"},
		{"uninstall", "remove the system service"},
		{"start", "start the installed service"},
		{"stop", "stop the installed service"},
		{"status", "show what the service is doing"},
		{"history", "list past backups and why any failed"},
		{"devices", "list the iPhones backupd knows"},
		{"backup", "back up an iPhone now"},
		{"verify", "check that a backup is complete"},
		{"doctor", "check this computer's setup and explain problems"},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch cmd := args[0]; cmd {
	case "version", "--version":
		fmt.Fprintf(stdout, "backupd %s\n", version)
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	default:
		for _, p := range planned() {
			if p.name == cmd {
				fmt.Fprintf(stderr, "backupd %s: not yet implemented\n", cmd)
				return 1
			}
		}
		fmt.Fprintf(stderr, "backupd: unknown command %q\n\n", cmd)
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: backupd COMMAND\n\nbackupd backs up the iPhones plugged into this computer.\n\nCommands:\n")
	fmt.Fprintf(w, "  %-10s %s\n", "version", "print the version")
	fmt.Fprintf(w, "  %-10s %s\n", "help", "print this help")
	fmt.Fprintf(w, "\nPlanned, not yet implemented:\n")
	for _, p := range planned() {
		fmt.Fprintf(w, "  %-10s %s\n", p.name, p.does)
	}
}
