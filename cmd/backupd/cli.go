package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/proto/devicestring"
)

// command is one backupd command: its line of the usage, which the help,
// the completion scripts and the dispatcher all read from commands().
type command struct {
	name string
	// args is the usage line after the name: the flags, their values
	// and whether a UDID is taken (completion reads it; a test checks it
	// against the flag set).
	args string
	does string
	// help, when set, is what -h prints between the usage line and the
	// flags.
	help string
	// flags defines the command's own flags on fs (--config is already
	// there) and returns what runs the command once they are parsed.
	flags func(fs *flag.FlagSet) runner
}

// runner runs a command with its positional arguments. Its error says
// what went wrong and, through its type, the exit code (see report).
type runner func(ctx context.Context, a *app, pos []string) error

// commands is the registry: a new command is a file with its command
// value and one line here.
func commands() []command {
	return []command{
		runCommand(),
		statusCommand(),
		backupCommand(),
		historyCommand(),
		devicesCommand(),
		serviceCommand("install", "[--config PATH]", "install backupd as a system service and start it"),
		serviceCommand("uninstall", "", "stop and remove the system service (backups stay)"),
		serviceCommand("start", "", "start the installed service"),
		serviceCommand("stop", "", "stop the installed service"),
		serviceCommand("restart", "", "restart the installed service"),
		verifyCommand(),
		filesCommand(),
		extractCommand(),
		encryptionCommand(),
		restoreCommand(),
		versionsCommand(),
		doctorCommand(),
		completionCommand(),
	}
}

// app is what every command shares: the output streams, the
// configuration file and, built once when first asked for, the
// configuration and the client of the daemon's API.
type app struct {
	stdout, stderr io.Writer
	configPath     string // --config

	cfg    *fileConfig
	cfgErr error
	c      *client.Client
}

// config loads the configuration file once; an error is a *configError
// (exit 5).
func (a *app) config() (fileConfig, error) {
	if a.cfg == nil && a.cfgErr == nil {
		cfg, _, err := loadConfig(a.configPath)
		a.cfg, a.cfgErr = &cfg, err
	}
	if a.cfgErr != nil {
		return fileConfig{}, a.cfgErr
	}
	return *a.cfg, nil
}

// client is the daemon's API client, made once. It says on stderr when
// the daemon that answers is another version than this command (after
// an upgrade the old daemon may still run).
func (a *app) client() (*client.Client, error) {
	if a.c != nil {
		return a.c, nil
	}
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	a.c = client.New(socketPath(cfg), client.WithVersion(version, func(daemonVersion string) {
		fmt.Fprintf(a.stderr, "backupd: the running service is version %s, this command is %s: restart the service (backupd restart) to run the new one\n", daemonVersion, version)
	}))
	return a.c, nil
}

func (a *app) close() {
	if a.c != nil {
		a.c.Close()
	}
}

// cmdError ends a command with an exit code. Its error, when there is
// one, is printed as "backupd COMMAND: error"; without one the command
// has said what there was to say.
type cmdError struct {
	code int
	err  error
}

func (e *cmdError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *cmdError) Unwrap() error { return e.err }

// fail is an exit code with a message.
func fail(code int, format string, args ...any) error {
	return &cmdError{code: code, err: fmt.Errorf(format, args...)}
}

// exitWith is an exit code whose message was already printed.
func exitWith(code int) error {
	if code == exitOK {
		return nil
	}
	return &cmdError{code: code}
}

// badConfig is a configuration the daemon refused: printed like a
// *configError, exit 5.
type badConfig struct{ err error }

func (e badConfig) Error() string { return e.err.Error() }
func (e badConfig) Unwrap() error { return e.err }

// report prints a command's error and returns its exit code.
func report(ctx context.Context, stderr io.Writer, name string, err error) int {
	var ee *cmdError
	var ce *configError
	var bc badConfig
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintf(stderr, "backupd %s: %v\n", name, ee.err)
		}
		return ee.code
	case errors.As(err, &ce), errors.As(err, &bc):
		printConfigError(stderr, err)
		return exitBadConfig
	case errors.Is(err, client.ErrNoDaemon):
		fmt.Fprintf(stderr, "backupd %s: daemon not running (start it with: backupd run)\n", name)
		return exitNoDaemon
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "backupd %s: interrupted\n", name)
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "backupd %s: %v\n", name, err)
	return exitError
}

// dispatch runs one command line.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch name := args[0]; name {
	case "version", "--version":
		fmt.Fprintf(stdout, "backupd %s\n", version)
		return exitOK
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	default:
		for _, c := range commands() {
			if c.name == name {
				return c.execute(ctx, args[1:], stdout, stderr)
			}
		}
		fmt.Fprintf(stderr, "backupd: unknown command %q\n\n", name)
		usage(stderr)
		return exitUsage
	}
}

// execute is the skeleton every command runs through: flags, then the
// command with the shared app, then its error reported.
func (c command) execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	defer a.close()
	fs := flag.NewFlagSet("backupd "+c.name, flag.ContinueOnError)
	fs.StringVar(&a.configPath, "config", defaultConfigPath(), "configuration file")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: backupd %s %s\n\n", c.name, c.args)
		if c.help != "" {
			fmt.Fprintf(fs.Output(), "%s\n\n", strings.TrimSpace(c.help))
		}
		fmt.Fprintf(fs.Output(), "Flags:\n")
		fs.PrintDefaults()
	}
	run := c.flags(fs)
	pos, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	c.spellUDIDs(pos)
	return report(ctx, stderr, c.name, run(ctx, a, pos))
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

// spellUDIDs writes the positional arguments that are UDIDs (where the
// usage line has UDID) as the phone spells them: a UDID typed in another
// case names the same phone, its one history and its one backup folder.
func (c command) spellUDIDs(pos []string) {
	i, value := 0, false
	for _, word := range strings.Fields(c.args) {
		if value { // a flag's value ("--source UDID")
			value = false
			continue
		}
		if strings.HasPrefix(strings.TrimPrefix(word, "["), "-") {
			value = !strings.HasSuffix(word, "]") // "[--from WHICH]", "--to DIR"
			continue
		}
		if i >= len(pos) {
			return
		}
		if strings.Contains(word, "UDID") {
			pos[i] = devicestring.UDID(pos[i])
		}
		i++
	}
}

// noArgs is the check of a command that takes no positional argument.
func noArgs(pos []string) error {
	if len(pos) > 0 {
		return fail(exitUsage, "unexpected argument %q", pos[0])
	}
	return nil
}

func printConfigError(w io.Writer, err error) {
	fmt.Fprintf(w, "backupd: bad config:\n")
	for line := range strings.SplitSeq(err.Error(), "\n") {
		fmt.Fprintf(w, "  %s\n", line)
	}
}
