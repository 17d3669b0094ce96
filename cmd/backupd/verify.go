package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/daemon/offline"
)

// verifyTimeout bounds one verify; reading a large backup's Manifest.db
// and stat'ing its files takes seconds to minutes.
const verifyTimeout = 2 * time.Hour

// verifyReport is what `verify --json` prints.
type verifyReport struct {
	DaemonRunning bool               `json:"daemon_running"`
	BackupDir     string             `json:"backup_dir,omitempty"`
	Backups       []api.VerifyResult `json:"backups"`
}

func verifyCommand() command {
	return command{
		name: "verify", args: "[UDID|--all] [--versions] [--password-file F|-] [--json]", does: "check that the latest backups (and versions) are complete",
		help: `Checks that the latest backup of each iPhone (or of one) is complete:
Status.plist says the backup finished, the plists parse, Manifest.db opens
and every file it lists is there with its size. With --versions the older
versions are checked too. Nothing is written.

An encrypted backup's files cannot be checked without its password:
with --password-file (- reads stdin) Manifest.db is decrypted and every
file it lists must decrypt to its size, as deep as a plain backup's
check. A backup the password does not open fails with cause
wrong_backup_password.

With the service running, it verifies through the service, so that no
backup is swapped in under it; without, it reads backup_dir directly.

Exit status: 0 when every backup verifies, 1 when any does not (or on
an error), 2 on bad arguments.`,
		flags: func(fs *flag.FlagSet) runner {
			var all, versions, asJSON bool
			var passwordFile string
			fs.StringVar(&passwordFile, "password-file", "", "check encrypted backups with the password on the first line of this file (- for stdin)")
			fs.BoolVar(&all, "all", false, "verify every device's backup (the default without a UDID)")
			fs.BoolVar(&versions, "versions", false, "verify the older versions too, not only the latest backup")
			fs.BoolVar(&asJSON, "json", false, "print JSON")
			return func(ctx context.Context, a *app, pos []string) error {
				switch {
				case len(pos) > 1:
					return fail(exitUsage, "one UDID at most")
				case len(pos) == 1 && all:
					return fail(exitUsage, "give a UDID or --all, not both")
				}
				udid := ""
				if len(pos) == 1 {
					udid = pos[0]
					if err := repo.ValidUDID(udid); err != nil {
						return fail(exitUsage, "%w", err)
					}
				}
				var password string
				if passwordFile != "" {
					var err error
					if password, err = (passwordSource{file: passwordFile, stdin: os.Stdin}).read(false, ""); err != nil {
						return fail(exitError, "%w", err)
					}
				}
				return verify(ctx, a, udid, versions, password, asJSON)
			}
		},
	}
}

func verify(ctx context.Context, a *app, udid string, versions bool, password string, asJSON bool) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	tty := isTerminal(a.stderr)

	rep := verifyReport{BackupDir: cfg.BackupDir}
	stopSpin := spinner(a.stderr, tty, "verifying")
	resp, err := c.Verify(ctx, udid, api.VerifyRequest{Versions: versions, Password: password})
	stopSpin()
	switch {
	case err == nil:
		rep.DaemonRunning, rep.Backups = true, resp.Backups
	case errors.Is(err, client.ErrNoDaemon):
		fmt.Fprintf(a.stderr, "backupd verify: daemon not running; reading %s directly\n", cfg.BackupDir)
		if rep.Backups, err = verifyDirect(ctx, cfg, udid, versions, []byte(password), a.stderr, tty); err != nil {
			return fail(exitError, "%w", err)
		}
	default:
		return err
	}
	if rep.Backups == nil {
		rep.Backups = []api.VerifyResult{}
	}
	bad := 0
	for _, b := range rep.Backups {
		if !b.OK {
			bad++
		}
	}
	if asJSON {
		if err := writeJSON(a.stdout, rep); err != nil {
			return err
		}
	} else {
		printVerify(a.stdout, rep, bad)
	}
	if bad > 0 {
		return exitWith(exitError)
	}
	return nil
}

// verifyDirect verifies without the daemon: backup_dir opened read-only.
func verifyDirect(ctx context.Context, cfg fileConfig, udid string, versions bool, password []byte, stderr io.Writer, tty bool) ([]api.VerifyResult, error) {
	r, err := repo.Open(cfg.BackupDir, repo.Options{})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var udids []string
	if udid != "" {
		_, hasLatest := r.Latest(udid)
		vs, err := r.Versions(udid)
		if err != nil {
			return nil, err
		}
		if !hasLatest && len(vs) == 0 {
			return nil, fmt.Errorf("there is no backup of %s in %s", udid, r.Dir())
		}
		udids = []string{udid}
	}
	names := map[string]string{}
	if devs, err := devicesFromHistory(cfg); err == nil {
		for _, d := range devs {
			names[d.UDID] = d.Name
		}
	}
	var progress offline.VerifyProgress
	if tty {
		progress = func(done, total int, u, path string) {
			if done == total {
				fmt.Fprint(stderr, "\r\033[K")
				return
			}
			fmt.Fprintf(stderr, "\r\033[Kverifying %d of %d: %s (%s)", done+1, total, nameOf(names, u), shortUDID(u))
		}
	}
	return offline.VerifyBackups(ctx, r, udids, versions, password, func(u string) string { return names[u] }, progress)
}

// spinner shows what is being waited for, with the time so far, on a
// terminal; the returned function clears it.
func spinner(w io.Writer, tty bool, what string) func() {
	if !tty {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		frames := `|/-\`
		for i := 0; ; i++ {
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(w, "\r\033[K%c %s… %s", frames[i%len(frames)], what, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

func printVerify(w io.Writer, rep verifyReport, bad int) {
	if len(rep.Backups) == 0 {
		fmt.Fprintf(w, "no backups to verify in %s\n", rep.BackupDir)
		return
	}
	for _, b := range rep.Backups {
		fmt.Fprintln(w, verifyLine(b))
		for _, p := range b.Problems {
			fmt.Fprintf(w, "    %s\n", p)
		}
		if b.MoreProblems > 0 {
			fmt.Fprintf(w, "    … and %s\n", plural(b.MoreProblems, "more problem"))
		}
		if b.Error != "" {
			fmt.Fprintf(w, "    %s\n", b.Error)
		}
		if b.Cause == cause.WrongBackupPassword {
			fmt.Fprintf(w, "    the password does not open it (%s)\n    Fix: %s\n", b.Cause, wrongPasswordFix)
		}
	}
	if bad == 0 {
		fmt.Fprintf(w, "%s verified\n", plural(len(rep.Backups), "backup"))
		return
	}
	fmt.Fprintf(w, "%d of %s do not verify: do not count on them for a restore; a full backup (backupd backup --full UDID) makes a new one\n", bad, plural(len(rep.Backups), "backup"))
}

// verifyLine is one backup's line: ✓ or ✗, device, which backup, path,
// files and size.
func verifyLine(b api.VerifyResult) string {
	var s strings.Builder
	mark := "✓"
	if !b.OK {
		mark = "✗"
	}
	name := b.Name
	if name == "" {
		name = "iPhone"
	}
	which := "latest"
	if !b.Latest {
		which = "version"
	}
	fmt.Fprintf(&s, "%s %s (%s)  %s", mark, name, shortUDID(b.UDID), which)
	if !b.Time.IsZero() {
		fmt.Fprintf(&s, " of %s", b.Time.Local().Format("2006-01-02 15:04"))
	}
	fmt.Fprintf(&s, "  %s  %d files, %s", b.Path, b.Files, api.FormatBytes(b.Size))
	if b.Encrypted {
		s.WriteString(", encrypted")
	}
	return s.String()
}
