package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
)

// encryptionTimeout bounds the wait for the iPhone's answer: it may ask
// for its passcode first, and a person has to pick it up.
const encryptionTimeout = 10 * time.Minute

// maxPasswordLen bounds a password read from a file or stdin; the API
// refuses request bodies over a few KiB.
const maxPasswordLen = 1024

// passwordSource reads the password: prompt asks on the terminal,
// without echo.
type passwordSource struct {
	file   string // --password-file; "-" is stdin; "" asks on the terminal
	stdin  io.Reader
	tty    bool // stdin is a terminal to ask on
	prompt func(label string) (string, error)
	// label, when set, is what the terminal prompt says instead of
	// asking for the current or a new backup password.
	label string
}

func encryptionCommand() command {
	return command{
		name: "encryption", args: "on|off [UDID] [--password-file F]", does: "turn backup encryption on or off on an iPhone",
		help: `Turns the encryption of an iPhone's backups on or off. "on" sets the
backup password, "off" needs the current one. The password is asked for
twice on the terminal, without echo, or read from the first line of
--password-file (- reads stdin, for scripts). The iPhone may ask for its
passcode before it answers: unlock it and enter it.

Without a UDID, the one iPhone connected is meant. The service must be
running: it talks to the iPhone.

Exit status: 0 done, 1 error, 2 bad arguments, 3 the service is not
running, 4 the iPhone refused (a wrong password: the cause and its fix are
printed), 130 interrupted (Ctrl-C).`,
		flags: func(fs *flag.FlagSet) runner {
			var passwordFile string
			fs.StringVar(&passwordFile, "password-file", "", "read the password from the first line of this file (- for stdin) instead of asking")
			return func(ctx context.Context, a *app, pos []string) error {
				if len(pos) == 0 || len(pos) > 2 || (pos[0] != "on" && pos[0] != "off") {
					return fail(exitUsage, "say on or off, and at most one UDID (backupd encryption on|off [UDID])")
				}
				c, err := a.client()
				if err != nil {
					return err
				}
				src := passwordSource{file: passwordFile, stdin: os.Stdin, tty: term.IsTerminal(int(os.Stdin.Fd())), prompt: terminalPrompt(a.stderr)}
				return setEncryption(ctx, c, pos[0] == "on", pos[1:], src, a.stdout, a.stderr)
			}
		},
	}
}

// setEncryption does the work of `encryption`, with the password read
// from src.
func setEncryption(ctx context.Context, c *client.Client, enable bool, pos []string, src passwordSource, stdout, stderr io.Writer) error {
	udid, name, err := askDevice(ctx, c, pos)
	if err != nil {
		return err
	}
	pw, err := src.readContext(ctx, enable, name)
	if ctx.Err() != nil {
		return fail(exitInterrupted, "interrupted; nothing was changed")
	}
	if err != nil {
		return fail(exitError, "%w", err)
	}
	state := "off"
	if enable {
		state = "on"
	}
	fmt.Fprintf(stderr, "Turning backup encryption %s for %s; the iPhone may ask for its passcode: unlock it and enter it.\n", state, name)
	ectx, cancel := context.WithTimeout(ctx, encryptionTimeout)
	defer cancel()
	resp, err := c.SetEncryption(ectx, udid, api.EncryptionRequest{Enable: enable, Password: pw})
	var ce *client.Error
	switch {
	case ctx.Err() != nil:
		return fail(exitInterrupted, "interrupted before %s answered; whether encryption changed, backupd doctor %s says", name, udid)
	case errors.As(err, &ce) && ce.Code == api.ErrBusy:
		return fail(exitError, "%s: %s", name, ce.Message)
	case errors.As(err, &ce) && ce.Code == api.ErrNotConnected:
		return fail(exitError, "%s is not connected: plug it in, unlock it and try again", name)
	case err != nil:
		return err
	}
	if resp.Name != "" {
		name = resp.Name
	}
	switch {
	case resp.OK:
		if resp.Message != "" {
			fmt.Fprintf(stdout, "%s: %s\n", name, resp.Message)
		}
		fmt.Fprintf(stdout, "encryption is %s for %s\n", state, name)
		return nil
	case resp.Cause != cause.None:
		in := cause.Lookup(resp.Cause)
		return fail(exitFailed, "%s refused: %s (%s)\n  Fix: %s", name, in.Summary, resp.Cause, in.Fix)
	default:
		return fail(exitError, "%s: %s", name, resp.Message)
	}
}

// askDevice asks the daemon which phone is meant: the UDID given, or
// the one connected.
func askDevice(ctx context.Context, c *client.Client, pos []string) (udid, name string, err error) {
	qctx, cancel := context.WithTimeout(ctx, requestTimeout)
	devs, err := c.Devices(qctx)
	cancel()
	if errors.Is(err, client.ErrNoDaemon) {
		return "", "", fail(exitNoDaemon, "daemon not running: it is what talks to the iPhone (start it with: backupd run, or backupd start)")
	}
	if err != nil {
		return "", "", err
	}
	return pickDevice(devs, pos)
}

// pickDevice finds the device meant: the UDID given, or the one
// connected.
func pickDevice(devs []api.Device, pos []string) (udid, name string, err error) {
	if len(pos) == 1 {
		for _, d := range devs {
			if d.UDID == pos[0] {
				return d.UDID, nameOf(map[string]string{d.UDID: d.Name}, d.UDID), nil
			}
		}
		// Let the daemon say what is wrong with it.
		return pos[0], "iPhone " + shortUDID(pos[0]), nil
	}
	var conn []api.Device
	for _, d := range devs {
		if d.Connected {
			conn = append(conn, d)
		}
	}
	switch len(conn) {
	case 0:
		return "", "", fail(exitError, "no iPhone is connected: plug it in and unlock it")
	case 1:
		return conn[0].UDID, nameOf(map[string]string{conn[0].UDID: conn[0].Name}, conn[0].UDID), nil
	}
	var list []string
	for _, d := range conn {
		list = append(list, fmt.Sprintf("%s (%s)", d.UDID, nameOf(map[string]string{d.UDID: d.Name}, d.UDID)))
	}
	return "", "", fail(exitUsage, "%d iPhones are connected; name one: %s", len(conn), strings.Join(list, ", "))
}

// readContext is read, given up when ctx ends (Ctrl-C): the terminal
// gets its echo back and the read is left behind, since a read of stdin
// cannot be called off.
func (s passwordSource) readContext(ctx context.Context, enable bool, name string) (string, error) {
	if s.tty && s.file == "" {
		if st, err := term.GetState(int(os.Stdin.Fd())); err == nil {
			defer func() {
				if ctx.Err() != nil {
					term.Restore(int(os.Stdin.Fd()), st)
				}
			}()
		}
	}
	type result struct {
		pw  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		pw, err := s.read(enable, name)
		done <- result{pw, err}
	}()
	select {
	case r := <-done:
		return r.pw, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// read returns the password: from the file or stdin, or asked for on the
// terminal (twice for a new one).
func (s passwordSource) read(enable bool, name string) (string, error) {
	if s.file != "" {
		var r io.Reader = s.stdin
		where := "stdin"
		if s.file != "-" {
			f, err := os.Open(s.file)
			if err != nil {
				return "", fmt.Errorf("password file: %w", err)
			}
			defer f.Close()
			r, where = f, s.file
		}
		line, err := bufio.NewReader(io.LimitReader(r, maxPasswordLen+1)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read the password from %s: %w", where, err)
		}
		if len(line) > maxPasswordLen {
			return "", fmt.Errorf("the password in %s is longer than %d bytes", where, maxPasswordLen)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", fmt.Errorf("the password in %s is empty (its first line is read)", where)
		}
		return pw, nil
	}
	if !s.tty {
		return "", errors.New("no terminal to ask for the password on; give --password-file PATH, or --password-file - to read it from stdin")
	}
	label := "Current backup password for " + name + ": "
	switch {
	case s.label != "":
		label = s.label
	case enable:
		label = "New backup password for " + name + ": "
	}
	pw, err := s.prompt(label)
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("the password is empty")
	}
	if !enable {
		return pw, nil
	}
	again, err := s.prompt("Type it again: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the two passwords differ; nothing was changed")
	}
	return pw, nil
}

// terminalPrompt asks on the terminal, without echo, with the label on
// w.
func terminalPrompt(w io.Writer) func(string) (string, error) {
	return func(label string) (string, error) {
		fmt.Fprint(w, label)
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(w)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		return string(b), nil
	}
}
