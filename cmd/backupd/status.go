package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/daemon/offline"
	"github.com/backupd/backupd/store"
)

// requestTimeout bounds one question to the daemon.
const requestTimeout = 10 * time.Second

func socketPath(cfg fileConfig) string { return filepath.Join(cfg.StateDir, api.SocketName) }

// openHistory opens the history read-only, for when no daemon runs; nil
// with no error when there is no history yet.
func openHistory(cfg fileConfig) (*store.Store, error) {
	st, err := store.Open(filepath.Join(cfg.StateDir, "history.db"), store.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, os.ErrNotExist) {
		// No file, or the empty one a starting daemon has not yet
		// initialised: no history yet either way.
		return nil, nil
	}
	return st, err
}

// statusReport is what `status --json` prints.
type statusReport struct {
	DaemonRunning bool          `json:"daemon_running"`
	Health        *api.Health   `json:"health,omitempty"`
	OverdueAfter  string        `json:"overdue_after"`
	Devices       []deviceEntry `json:"devices"`
}

// deviceEntry is a device as status shows it.
type deviceEntry struct {
	api.Device
	// Overdue: no successful backup within overdue_after.
	Overdue bool `json:"overdue"`
}

func statusCommand() command {
	return command{
		name: "status", args: "[--json] [--once]", does: "show each iPhone's last backup and what the service is doing",
		flags: func(fs *flag.FlagSet) runner {
			var asJSON, once bool
			fs.BoolVar(&asJSON, "json", false, "print JSON")
			fs.BoolVar(&once, "once", false, "on a terminal, print once instead of following a backup under way")
			return func(ctx context.Context, a *app, pos []string) error {
				if err := noArgs(pos); err != nil {
					return err
				}
				return status(ctx, a, asJSON, once)
			}
		},
	}
}

func status(ctx context.Context, a *app, asJSON, once bool) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	rep, err := gatherStatusFrom(ctx, c, cfg, time.Now())
	if err != nil {
		return fail(exitError, "%w", err)
	}
	if !asJSON && !once && rep.DaemonRunning && anyUnderWay(rep) {
		if f, ok := a.stdout.(*os.File); ok && isTerminal(a.stdout) {
			// Ctrl-C ends the following, not the backups: exit 0.
			if err := followStatus(ctx, c, cfg, f, rep); err != nil {
				return fail(exitError, "%w", err)
			}
			return nil
		}
	}
	if asJSON {
		if err := writeJSON(a.stdout, rep); err != nil {
			return err
		}
	} else {
		printStatus(a.stdout, rep, time.Now())
	}
	if !rep.DaemonRunning {
		return exitWith(exitNoDaemon)
	}
	return nil
}

// gatherStatus asks the daemon, or reads the history when none runs.
func gatherStatus(cfg fileConfig, now time.Time) (statusReport, error) {
	c := client.New(socketPath(cfg))
	defer c.Close()
	return gatherStatusFrom(context.Background(), c, cfg, now)
}

// gatherStatusFrom asks the daemon through c, or reads the history when
// none runs.
func gatherStatusFrom(ctx context.Context, c *client.Client, cfg fileConfig, now time.Time) (statusReport, error) {
	rep := statusReport{OverdueAfter: cfg.OverdueAfter.String(), Devices: []deviceEntry{}}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var devs []api.Device
	err := retryInUse(ctx, func() error {
		h, err := c.Health(ctx)
		switch {
		case err == nil:
			rep.DaemonRunning, rep.Health = true, &h
			devs, err = c.Devices(ctx)
			return err
		case errors.Is(err, client.ErrNoDaemon):
			devs, err = devicesFromHistory(cfg)
			return err
		}
		return err
	})
	if err != nil {
		return rep, err
	}
	if h := rep.Health; h != nil && h.Usbmuxd.Cause != "" && h.Usbmuxd.Fix == "" {
		in := cause.Lookup(h.Usbmuxd.Cause)
		h.Usbmuxd.Summary, h.Usbmuxd.Fix = in.Summary, in.Fix
	}
	for _, d := range devs {
		if d.LastAttempt != nil {
			fillCause(d.LastAttempt)
		}
		if d.Cause != "" && d.Summary == "" {
			in := cause.Lookup(d.Cause)
			d.Summary, d.Fix = in.Summary, in.Fix
		}
		rep.Devices = append(rep.Devices, deviceEntry{
			Device:  d,
			Overdue: overdue(d, now, cfg.OverdueAfter.D()),
		})
	}
	sort.SliceStable(rep.Devices, func(i, j int) bool {
		a, b := rep.Devices[i], rep.Devices[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.UDID < b.UDID
	})
	return rep, nil
}

// retryInUse runs fn again while it fails because the history is held by
// another process although no daemon answered: a daemon that is starting
// (it opens the history before it listens) or stopping.
func retryInUse(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, store.ErrInUse) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; backupd seems to be starting or stopping, try again", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fillCause adds the words of a run's cause when the run lacks them.
func fillCause(r *api.Run) {
	if r.Cause != "" && r.Summary == "" {
		in := cause.Lookup(r.Cause)
		r.Summary, r.Fix = in.Summary, in.Fix
	}
}

// devicesFromHistory builds the device list from the history database.
func devicesFromHistory(cfg fileConfig) ([]api.Device, error) {
	st, err := openHistory(cfg)
	if err != nil || st == nil {
		return nil, err
	}
	defer st.Close()
	return offline.StoredDevices(st)
}

func printStatus(w io.Writer, rep statusReport, now time.Time) {
	for _, l := range statusLines(rep, now) {
		fmt.Fprintln(w, l)
	}
}

// overdue reports whether a device has gone without a successful backup
// for longer than after: since its last success, or since backupd first
// saw it when it never had one (a phone plugged in for the first time is
// not overdue while its first backup runs).
func overdue(d api.Device, now time.Time, after time.Duration) bool {
	since := d.LastSuccess
	if since.IsZero() {
		since = d.FirstSeen
	}
	return !since.IsZero() && now.Sub(since) > after
}

// statusLines is what status prints, a line each.
func statusLines(rep statusReport, now time.Time) []string {
	var lines []string
	if !rep.DaemonRunning {
		lines = append(lines, "daemon not running; from the history:")
	}
	if h := rep.Health; h != nil && !h.Usbmuxd.Connected && h.Usbmuxd.Cause != "" {
		// Nothing is backed up until this is fixed: say it first.
		lines = append(lines, fmt.Sprintf("usbmuxd unreachable (%s): %s Fix: %s", h.Usbmuxd.Cause, h.Usbmuxd.Summary, h.Usbmuxd.Fix))
	}
	if len(rep.Devices) == 0 {
		return append(lines, "no iPhone seen yet")
	}
	for _, d := range rep.Devices {
		lines = append(lines, statusLine(d, now))
	}
	return lines
}

// statusLine is one device's line.
func statusLine(d deviceEntry, now time.Time) string {
	var b strings.Builder
	name := d.Name
	if name == "" {
		name = "iPhone"
	}
	fmt.Fprintf(&b, "%s (%s)", name, shortUDID(d.UDID))
	if d.LastSuccess.IsZero() {
		b.WriteString(": never backed up")
	} else {
		fmt.Fprintf(&b, ": last backup %s (%s)", d.LastSuccess.Local().Format("2006-01-02 15:04"), age(now.Sub(d.LastSuccess)))
	}
	if d.Overdue {
		b.WriteString(" OVERDUE")
	}
	switch {
	case d.State == api.StateAwaitingPasscode:
		// The one state where the person must act at once: the phone
		// gives up after about three minutes.
		note := d.Note
		if note == "" {
			note = "enter your passcode on " + name + " to start the backup"
		}
		fmt.Fprintf(&b, "; waiting: %s", note)
	case d.State == api.StateBackingUp || d.State == api.StateRestoring:
		what := "; backing up now"
		if d.State == api.StateRestoring {
			what = "; restoring now"
		}
		b.WriteString(what)
		if p := d.Progress; p != nil {
			b.WriteString(" " + progressBar(p) + thinkingNote(p, now))
		}
	case d.Connected && d.State != api.StateSucceeded && d.State != api.StateFailed && d.State != api.StateSkipped:
		fmt.Fprintf(&b, "; now %s", strings.ReplaceAll(string(d.State), "_", " "))
		if d.Cause != "" {
			fmt.Fprintf(&b, " (%s): %s Fix: %s", d.Cause, d.Summary, d.Fix)
		}
	}
	if r := d.LastAttempt; r != nil && d.State != api.StateBackingUp && d.State != api.StateRestoring {
		what := "attempt"
		if r.Kind == api.KindRestore {
			what = "restore"
		}
		fmt.Fprintf(&b, "; last %s %s %s", what, r.Start.Local().Format("2006-01-02 15:04"), r.Outcome)
		if r.Kind == api.KindRestore && r.Version != "" {
			fmt.Fprintf(&b, " (from %s of %s)", r.Version, shortUDID(r.Source))
		}
		if r.Cause != "" && r.Outcome != api.OutcomeSuccess {
			fmt.Fprintf(&b, " (%s): %s Fix: %s", r.Cause, r.Summary, r.Fix)
		}
		b.WriteString(unreadableNote(r))
	}
	if tr := d.Trend; tr != nil {
		fmt.Fprintf(&b, "; %s", tr.Text)
	}
	return b.String()
}

// thinkingNote says in plain words that a bar that does not move is a
// phone at work, so that nobody unplugs it.
func thinkingNote(p *api.Progress, now time.Time) string {
	if p.ThinkingSince.IsZero() {
		return ""
	}
	quiet := "less than a minute"
	if d := now.Sub(p.ThinkingSince).Truncate(time.Minute); d > 0 {
		quiet = strings.TrimSuffix(d.String(), "0s")
	}
	return fmt.Sprintf("; the iPhone is preparing its data (quiet for %s; this is normal, keep it connected)", quiet)
}

// age says how long ago, roughly.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute") + " ago"
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour") + " ago"
	}
	return plural(int(d/(24*time.Hour)), "day") + " ago"
}
