// Command backupd is the backupd service and its command line: `run`
// runs the service in the foreground; status, backup, history and devices
// talk to the running service over its local API, and read the history
// directly when it is not running.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
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
)

// command is one line of the usage.
type command struct {
	name, args, does string
	run              func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "[--config PATH] [--log-format console|json]", "run the service in the foreground", cmdRun},
		{"status", "[--json] [--once]", "show each iPhone's last backup and what the service is doing", cmdStatus},
		{"backup", "[UDID] [--full] [--wait]", "back up the connected iPhones (or one) now", cmdBackup},
		{"history", "[UDID] [--json] [--limit N] [--page N] [--outcome X]", "list past backups and why any failed", cmdHistory},
		{"devices", "[--json]", "list the iPhones backupd knows and the ones plugged in", cmdDevices},
		{"install", "[--config PATH]", "install backupd as a system service and start it", cmdService("install")},
		{"uninstall", "", "stop and remove the system service (backups stay)", cmdService("uninstall")},
		{"start", "", "start the installed service", cmdService("start")},
		{"stop", "", "stop the installed service", cmdService("stop")},
		{"restart", "", "restart the installed service", cmdService("restart")},
		{"verify", "[UDID|--all] [--versions] [--json]", "check that the latest backups (and versions) are complete", cmdVerify},
		{"encryption", "on|off [UDID] [--password-file F]", "turn backup encryption on or off on an iPhone", cmdEncryption},
		{"doctor", "[UDID] [--json]", "check this computer's setup and each iPhone, and explain problems", cmdDoctor},
		{"completion", "bash|zsh|fish", "print a shell completion script", cmdCompletion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch cmd := args[0]; cmd {
	case "version", "--version":
		fmt.Fprintf(stdout, "backupd %s\n", version)
		return exitOK
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	default:
		for _, c := range commands() {
			if c.name == cmd {
				return c.run(args[1:], stdout, stderr)
			}
		}
		fmt.Fprintf(stderr, "backupd: unknown command %q\n\n", cmd)
		usage(stderr)
		return exitUsage
	}
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
     problem
  2  usage: unknown command or flag, bad arguments
  3  the daemon is not running: status, history and devices print what
     they can find without it, then exit 3; backup and encryption need
     it (verify and doctor work the same either way)
  4  the backup failed or was refused (backup), or the iPhone refused
     the change (encryption); the cause and its fix are printed
  5  bad configuration: the file, line and key are printed; the daemon
     does not start
`, defaultConfigPath())
}

// parseFlags parses fs over args, allowing flags after positional
// arguments ("backup UDID --wait"). It returns the positional arguments,
// or an exit code when parsing ended the command (-h, a bad flag).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, int, bool) {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, 0, true
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), 0, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// newFlagSet returns a command's flag set with --config.
func newFlagSet(name, args string, config *string) *flag.FlagSet {
	fs := flag.NewFlagSet("backupd "+name, flag.ContinueOnError)
	fs.StringVar(config, "config", defaultConfigPath(), "configuration file")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: backupd %s %s\n\nFlags:\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// configFor loads the configuration for a command, printing what is
// wrong with it.
func configFor(path string, stderr io.Writer) (fileConfig, int, bool) {
	cfg, _, err := loadConfig(path)
	if err != nil {
		printConfigError(stderr, err)
		return cfg, exitBadConfig, false
	}
	return cfg, 0, true
}

func printConfigError(w io.Writer, err error) {
	fmt.Fprintf(w, "backupd: bad config:\n")
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
}
