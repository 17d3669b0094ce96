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

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/proto/devicestring"
)

// versionsTimeout bounds listing a phone's backups: each is verified,
// which reads its Manifest.db and stats its files.
const versionsTimeout = 30 * time.Minute

// restoreFlags are the restore command's flags.
type restoreFlags struct {
	source, from, passwordFile        string
	noSafety, skipApps, noReboot, yes bool
	wait, asJSON                      bool
}

func restoreCommand() command {
	return command{
		name: "restore",
		args: "[UDID] [--source UDID] [--from WHICH] [--password-file F|-] [--no-safety-backup] [--skip-apps] [--no-reboot] [--yes] [--wait] [--json]",
		does: "put a kept backup back on an iPhone",
		help: `Puts a kept backup back on a connected iPhone (without a UDID, the one
connected). What the iPhone holds now is replaced by the backup: the apps'
data, the settings and the system files, and the apps themselves, which the
iPhone downloads again once it has restarted. This is what Finder restores.

Which backup: --from latest (the default), a name as "backupd versions"
prints it, or an RFC 3339 date or time (2025-03-01, 2025-03-01T09:30:00Z),
meaning the newest kept backup at or before it. --source UDID takes another
iPhone's backup, to move to a new iPhone.

Safety first: unless --no-safety-backup, backupd backs the iPhone up before
it restores, and keeps that backup as a version marked "safety" in "backupd
versions", so that what the restore replaces can be restored in turn. On a
terminal you are asked to type the iPhone's name to confirm; --yes is for
scripts. Without a terminal and without --yes, restore refuses.

What each flag leaves out:
    --skip-apps         the apps: they are not reinstalled (no
                        RestoreApplications.plist); their data is restored
    --no-reboot         the restart at the end: the restored data shows only
                        once the iPhone restarts, and it takes no second
                        restore until then
    --no-safety-backup  the safety backup: what the iPhone holds now is lost
                        unless it was backed up

Settings: backupd restores the backup's settings, sending
RestorePreserveSettings = false as iTunes and Finder do. The two public
tools map their settings flag in opposite directions: libimobiledevice's
"idevicebackup2 restore --settings" sends RestorePreserveSettings = false
(restore the backup's settings), pymobiledevice3's "restore --settings"
sends true (keep the iPhone's own). backupd follows the key's name and
libimobiledevice.

Encrypted backups need their password: asked for without echo, or read from
the first line of --password-file (- reads stdin). It goes to the iPhone
only: backupd never logs it nor writes it to the history.

The iPhone refuses while Find My is on (find_my_enabled), a second time
before it restarts (restore_needs_reboot), and a backup from a newer iOS
(ios_too_old); backupd refuses a backup that does not verify
(backup_incomplete). With --wait, each comes with its fix.

Exit status: 0 restored (without --wait: accepted), 1 error or refused
before it started, 2 bad arguments or no way to confirm, 3 the service is
not running, 4 the restore failed (the cause and its fix are printed),
130 interrupted (the restore goes on in the service).`,
		flags: func(fs *flag.FlagSet) runner {
			var f restoreFlags
			fs.StringVar(&f.source, "source", "", "restore the backup of this iPhone (UDID) instead of the iPhone's own")
			fs.StringVar(&f.from, "from", "", "which backup: latest, a name from backupd versions, or an RFC 3339 date or time (default latest)")
			fs.StringVar(&f.passwordFile, "password-file", "", "read an encrypted backup's password from the first line of this file (- for stdin) instead of asking")
			fs.BoolVar(&f.noSafety, "no-safety-backup", false, "do not back the iPhone up first (what it holds now is lost)")
			fs.BoolVar(&f.skipApps, "skip-apps", false, "do not reinstall the backup's apps (their data is still restored)")
			fs.BoolVar(&f.noReboot, "no-reboot", false, "do not restart the iPhone at the end (the data shows after the next restart)")
			fs.BoolVar(&f.yes, "yes", false, "do not ask to confirm (for scripts)")
			fs.BoolVar(&f.wait, "wait", false, "show progress and wait until the restore ends")
			fs.BoolVar(&f.asJSON, "json", false, "print the request's answer (with --wait: the restore's run) as JSON")
			return func(ctx context.Context, a *app, pos []string) error {
				if len(pos) > 1 {
					return fail(exitUsage, "one UDID at most")
				}
				f.source = devicestring.UDID(f.source)
				for _, u := range append(pos, f.source) {
					if u != "" {
						if err := repo.ValidUDID(u); err != nil {
							return fail(exitUsage, "%w", err)
						}
					}
				}
				c, err := a.client()
				if err != nil {
					return err
				}
				in := restoreInput{
					stdin: os.Stdin, tty: term.IsTerminal(int(os.Stdin.Fd())), prompt: terminalPrompt(a.stderr),
					stderr: a.stderr,
				}
				return restoreNow(ctx, a.stdout, c, pos, f, in)
			}
		},
	}
}

// restoreInput is where restore asks its questions: the confirmation
// and the password.
type restoreInput struct {
	stdin  io.Reader
	tty    bool
	prompt func(label string) (string, error)
	stderr io.Writer
}

// restoreNow is the restore command: pick the phone and the backup, ask
// to confirm and for the password, send the request and, with --wait,
// follow it to its end.
func restoreNow(ctx context.Context, stdout io.Writer, c *client.Client, pos []string, f restoreFlags, in restoreInput) error {
	udid, name, err := askDevice(ctx, c, pos)
	if err != nil {
		return err
	}
	source := f.source
	if source == "" {
		source = udid
	}
	from := f.from
	if from == "" {
		from = repo.LatestName
	}
	vctx, cancel := context.WithTimeout(ctx, versionsTimeout)
	vs, err := c.Versions(vctx, source, from)
	cancel()
	var ce *client.Error
	switch {
	case errors.As(err, &ce) && ce.Code == api.ErrNotFound:
		return fail(exitError, "%s", ce.Message)
	case err != nil:
		return err
	case len(vs.Versions) != 1:
		return fail(exitError, "the service named %d backups for --from %q, not one", len(vs.Versions), from)
	}
	v := vs.Versions[0]
	fmt.Fprintf(in.stderr, "Restoring %s (%s) from %s\n", name, shortUDID(udid), describeVersion(v, vs.Name, source, udid))
	if !v.Verified {
		fmt.Fprintf(in.stderr, "Warning: this backup does not verify (%s); backupd will refuse to send it (backup_incomplete)\n", strings.Join(v.Problems, "; "))
	}
	if f.noSafety {
		fmt.Fprintf(in.stderr, "No safety backup: what %s holds now is lost unless it was backed up.\n", name)
	}
	if err := confirmRestore(ctx, in, f.yes, name); err != nil {
		return err
	}
	req := api.RestoreRequest{Source: f.source, From: v.ID, SkipApps: f.skipApps, NoReboot: f.noReboot}
	if f.noSafety {
		no := false
		req.SafetyBackup = &no
	}
	if v.Encrypted {
		src := passwordSource{file: f.passwordFile, stdin: in.stdin, tty: in.tty, prompt: in.prompt, label: "Password of the encrypted backup " + v.ID + ": "}
		pw, err := src.readContext(ctx, false, name)
		if ctx.Err() != nil {
			return fail(exitInterrupted, "interrupted; nothing was changed")
		}
		if err != nil {
			return fail(exitError, "%w", err)
		}
		req.Password = pw
	}

	// Follow the events before asking, so that no ending is missed.
	var stream *client.EventStream
	if f.wait {
		if stream, err = c.Events(ctx, udid); err != nil {
			return err
		}
		defer stream.Close()
	}
	asked := time.Now()
	qctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := c.Restore(qctx, udid, req)
	cancel()
	switch {
	case errors.As(err, &ce):
		return fail(exitError, "%s: %s", name, ce.Message)
	case err != nil:
		return err
	}
	if !f.wait {
		if f.asJSON {
			return writeJSON(stdout, resp)
		}
		fmt.Fprintf(stdout, "%s (%s): %s\n", name, shortUDID(udid), resp.Message)
		return nil
	}
	out := stdout
	if f.asJSON {
		out = in.stderr
	}
	run, code := waitRestore(ctx, stream, udid, name, asked, out, isTerminal(out))
	if ctx.Err() != nil {
		return fail(exitInterrupted, "interrupted; the restore goes on in the service (backupd status shows it)")
	}
	if f.asJSON && run != nil {
		if err := writeJSON(stdout, run); err != nil {
			return err
		}
	}
	return exitWith(code)
}

// describeVersion says which backup a restore takes, in a line.
func describeVersion(v api.VersionInfo, sourceName, source, target string) string {
	var b strings.Builder
	whose := "its own backup"
	if source != target {
		if sourceName == "" {
			sourceName = "iPhone"
		}
		whose = fmt.Sprintf("the backup of %s (%s)", sourceName, shortUDID(source))
	}
	fmt.Fprintf(&b, "%s %s, made %s: %s, %s", whose, v.ID, v.Time.Local().Format("2006-01-02 15:04"), api.FormatBytes(v.Size), plural(v.Files, "file"))
	if v.Latest {
		b.WriteString(", latest")
	}
	if v.Encrypted {
		b.WriteString(", encrypted")
	}
	if v.Safety {
		b.WriteString(", a safety backup")
	}
	return b.String()
}

// confirmRestore asks the person to type the phone's name, unless yes.
// Without a terminal to ask on it refuses.
func confirmRestore(ctx context.Context, in restoreInput, yes bool, name string) error {
	if yes {
		return nil
	}
	if !in.tty {
		return fail(exitUsage, "a restore replaces what is on %s, and there is no terminal to confirm on: add --yes to restore without asking", name)
	}
	fmt.Fprintf(in.stderr, "This replaces what is on %s. To go on, type its name (%s): ", name, name)
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(io.LimitReader(in.stdin, 4096)).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(in.stderr)
		return fail(exitInterrupted, "interrupted; nothing was changed")
	case got := <-line:
		if got != name {
			return fail(exitError, "%q is not %q: nothing was changed", got, name)
		}
	}
	return nil
}

// waitRestore follows the event stream until the restore asked for at
// asked ends, showing the safety backup's and the restore's progress. It
// returns the restore's run and the exit code.
func waitRestore(ctx context.Context, stream *client.EventStream, udid, name string, asked time.Time, w io.Writer, tty bool) (*api.Run, int) {
	shown := false
	endLine := func() {
		if shown {
			fmt.Fprintln(w)
			shown = false
		}
	}
	who := fmt.Sprintf("%s (%s)", name, shortUDID(udid))
	lastStep := map[api.State]int{}
	started := false
	for {
		ev, err := stream.Next()
		if err != nil {
			endLine()
			if ctx.Err() == nil {
				fmt.Fprintf(w, "backupd restore: lost the daemon's event stream: %v\n", err)
			}
			return nil, exitError
		}
		if ev.UDID != udid {
			continue
		}
		if ev.Name != "" && ev.Name != name {
			name = ev.Name
			who = fmt.Sprintf("%s (%s)", name, shortUDID(udid))
		}
		switch ev.Type {
		case api.EventProgress:
			if ev.Progress == nil {
				continue
			}
			what := "restoring"
			if ev.State == api.StateBackingUp {
				what = "safety backup"
			}
			if tty {
				fmt.Fprintf(w, "\r\033[K%s %s %s", who, what, progressBar(ev.Progress))
				shown = true
			} else if step := int(ev.Progress.Percent) / 10; step > lastStep[ev.State] {
				lastStep[ev.State] = step
				fmt.Fprintf(w, "%s %s: %3.0f%%  %s  %d files\n", who, what, ev.Progress.Percent, api.FormatBytes(ev.Progress.Bytes), ev.Progress.Files)
			}
		case api.EventState:
			switch {
			case ev.State == api.StateAwaitingPasscode || (ev.State == api.StateWaiting && ev.Cause != ""):
				endLine()
				fmt.Fprintf(w, "%s: waiting: %s\n", who, orDash(ev.Note))
			case ev.State == api.StateAbsent && !started:
				// Gone before anything was recorded: the request went with it.
				endLine()
				in := cause.Lookup(cause.Disconnected)
				fmt.Fprintf(w, "%s: no restore: %s (%s)\n  Fix: %s\n", who, in.Summary, cause.Disconnected, in.Fix)
				return nil, exitFailed
			}
		case api.EventRun:
			r := ev.Run
			if r == nil || r.Start.Before(asked.Add(-time.Second)) {
				continue
			}
			started = true
			if r.Outcome == api.OutcomeRunning {
				continue
			}
			endLine()
			fillCause(r)
			if r.Kind != api.KindRestore {
				// The safety backup.
				if r.Outcome == api.OutcomeSuccess {
					fmt.Fprintf(w, "%s: safety backup done: %s, %d files in %s\n", who, api.FormatBytes(r.Bytes), r.Files, r.End.Sub(r.Start).Round(100*time.Millisecond))
				} else {
					fmt.Fprintf(w, "%s: safety backup %s: %s (%s)\n  Fix: %s\n", who, r.Outcome, r.Summary, r.Cause, r.Fix)
				}
				continue
			}
			if r.Outcome == api.OutcomeSuccess {
				fmt.Fprintf(w, "%s: restore done: %s, %d files in %s", who, api.FormatBytes(r.Bytes), r.Files, r.End.Sub(r.Start).Round(100*time.Millisecond))
				if r.Note != "" {
					fmt.Fprintf(w, " (%s)", r.Note)
				}
				fmt.Fprintln(w)
				return r, exitOK
			}
			fmt.Fprintf(w, "%s: restore %s: %s (%s)\n  Fix: %s\n", who, r.Outcome, r.Summary, r.Cause, r.Fix)
			if r.Note != "" {
				fmt.Fprintf(w, "  %s\n", r.Note)
			}
			return r, exitFailed
		}
	}
}
