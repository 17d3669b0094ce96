package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
)

func backupCommand() command {
	return command{
		name: "backup", args: "[UDID] [--full] [--wait]", does: "back up the connected iPhones (or one) now",
		flags: func(fs *flag.FlagSet) runner {
			var full, wait bool
			fs.BoolVar(&full, "full", false, "a full backup instead of the changes")
			fs.BoolVar(&wait, "wait", false, "show progress and wait until the backup ends")
			return func(ctx context.Context, a *app, pos []string) error {
				if len(pos) > 1 {
					return fail(exitUsage, "one UDID at most")
				}
				c, err := a.client()
				if err != nil {
					return err
				}
				return backupNow(ctx, a.stdout, c, pos, full, wait)
			}
		},
	}
}

// backupNow asks for the backups and, with wait, follows them to their
// end.
func backupNow(ctx context.Context, stdout io.Writer, c *client.Client, pos []string, full, wait bool) error {
	udids, names, err := backupTargets(ctx, c, pos)
	if err != nil {
		return err
	}
	if len(udids) == 0 {
		fmt.Fprintf(stdout, "no backup: no iPhone is connected\n  Fix: plug the iPhone in, unlock it and try again\n")
		return exitWith(exitFailed)
	}

	// Follow the events before asking, so that no ending is missed.
	var stream *client.EventStream
	if wait {
		if stream, err = c.Events(ctx, ""); err != nil {
			return err
		}
		defer stream.Close()
	}
	exit := exitOK
	pending := map[string]bool{} // UDID → only a manual run's end counts
	asked := map[string]time.Time{}
	for _, u := range udids {
		asked[u] = time.Now()
		qctx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, err := c.BackupNow(qctx, u, api.BackupRequest{Full: full})
		cancel()
		var ce *client.Error
		switch {
		case err == nil:
			fmt.Fprintf(stdout, "%s (%s): backup requested\n", nameOf(names, u), shortUDID(u))
			pending[u] = true
		case errors.As(err, &ce) && ce.Code == api.ErrBusy:
			fmt.Fprintf(stdout, "%s (%s): a backup is already under way\n", nameOf(names, u), shortUDID(u))
			pending[u] = false
		case errors.As(err, &ce) && ce.Code == api.ErrNotConnected:
			// The daemon refused: no backup, like one that was skipped.
			fmt.Fprintf(stdout, "%s (%s): no backup: the iPhone is not connected (%s)\n  Fix: plug it in, unlock it and try again\n", nameOf(names, u), shortUDID(u), cause.Disconnected)
			exit = exitFailed
		case errors.As(err, &ce) && ce.Code == api.ErrRefused:
			fmt.Fprintf(stdout, "%s (%s): no backup: %s\n  Fix: change the configuration (policy.allow, policy.deny, policy.wifi) and restart backupd, if this iPhone should be backed up\n", nameOf(names, u), shortUDID(u), ce.Message)
			exit = exitFailed
		default:
			return err
		}
	}
	if !wait || len(pending) == 0 {
		return exitWith(exit)
	}
	code := waitBackups(ctx, stream, pending, asked, full, names, stdout, isTerminal(stdout))
	if ctx.Err() != nil {
		// Ctrl-C ended the stream: the backups go on without us.
		return fail(exitInterrupted, "interrupted; the backup goes on in the service (backupd status shows it)")
	}
	if code != exitOK {
		return exitWith(code)
	}
	return exitWith(exit)
}

// backupTargets are the devices to back up: the UDID given, or every
// connected one; names maps UDIDs to device names.
func backupTargets(ctx context.Context, c *client.Client, pos []string) (udids []string, names map[string]string, err error) {
	names = map[string]string{}
	qctx, cancel := context.WithTimeout(ctx, requestTimeout)
	devs, err := c.Devices(qctx)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	for _, d := range devs {
		names[d.UDID] = d.Name
		if len(pos) == 1 {
			if d.UDID == pos[0] {
				udids = append(udids, d.UDID)
			}
		} else if d.Connected {
			udids = append(udids, d.UDID)
		}
	}
	if len(pos) == 1 && len(udids) == 0 {
		udids = pos // let the daemon say what is wrong with it
	}
	return udids, names, nil
}

func nameOf(names map[string]string, udid string) string {
	if n := names[udid]; n != "" {
		return n
	}
	return "iPhone"
}

// waitBackups follows the event stream until every device in pending
// has finished a run, printing progress; the exit code says whether all
// succeeded. asked holds when each backup was asked for: a backup that
// started after that and succeeded (and is full if full was asked) is
// the one asked for even when its trigger is not manual, because the
// daemon lets a plug-in backup whose checks were under way meet a
// manual request instead of making a second one.
func waitBackups(ctx context.Context, stream *client.EventStream, pending map[string]bool, asked map[string]time.Time, full bool, names map[string]string, w io.Writer, tty bool) int {
	exit := exitOK
	lastStep := map[string]int{}
	waitedFor := map[string]cause.Code{}
	progressShown := false
	endLine := func() {
		if progressShown {
			fmt.Fprintln(w)
			progressShown = false
		}
	}
	for len(pending) > 0 {
		ev, err := stream.Next()
		if err != nil {
			endLine()
			if ctx.Err() == nil { // not Ctrl-C
				fmt.Fprintf(w, "backupd backup: lost the daemon's event stream: %v\n", err)
			}
			return exitError
		}
		manualOnly, ok := pending[ev.UDID]
		if !ok {
			continue
		}
		if ev.Name != "" {
			names[ev.UDID] = ev.Name
		}
		switch ev.Type {
		case api.EventProgress:
			p := ev.Progress
			if p == nil {
				continue
			}
			line := fmt.Sprintf("%s (%s): %3.0f%%  %s  %d files", nameOf(names, ev.UDID), shortUDID(ev.UDID), p.Percent, api.FormatBytes(p.Bytes), p.Files)
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", progressLine(nameOf(names, ev.UDID), ev.UDID, p))
				progressShown = true
			} else if step := int(p.Percent) / 10; step > lastStep[ev.UDID] {
				lastStep[ev.UDID] = step
				fmt.Fprintln(w, line)
			}
		case api.EventState:
			// A manual backup that policy refuses records its skip only
			// once per connection, and one that cannot start (trust,
			// lock, cable) waits: the state says so.
			switch ev.State {
			case api.StateWaiting:
				if ev.Cause != "" && waitedFor[ev.UDID] != ev.Cause {
					waitedFor[ev.UDID] = ev.Cause
					endLine()
					in := cause.Lookup(ev.Cause)
					fmt.Fprintf(w, "%s (%s): waiting: %s (%s)\n  Fix: %s\n", nameOf(names, ev.UDID), shortUDID(ev.UDID), in.Summary, ev.Cause, in.Fix)
				}
			case api.StateSkipped, api.StateAbsent:
				code := ev.Cause
				if ev.State == api.StateAbsent {
					code = cause.Disconnected
				}
				if code == "" {
					continue
				}
				endLine()
				delete(pending, ev.UDID)
				exit = exitFailed
				in := cause.Lookup(code)
				fmt.Fprintf(w, "%s (%s): no backup: %s (%s)\n  Fix: %s\n", nameOf(names, ev.UDID), shortUDID(ev.UDID), in.Summary, code, in.Fix)
			}
		case api.EventRun:
			r := ev.Run
			if r == nil || r.Outcome == api.OutcomeRunning {
				continue
			}
			metBy := r.Outcome == api.OutcomeSuccess && !r.Start.Before(asked[ev.UDID]) && (!full || r.Kind == "full")
			if manualOnly && r.Trigger != api.TriggerManual && !metBy {
				continue
			}
			endLine()
			fillCause(r)
			delete(pending, ev.UDID)
			if r.Outcome == api.OutcomeSuccess {
				fmt.Fprintf(w, "%s (%s): backup done: %s, %d files in %s\n", nameOf(names, ev.UDID), shortUDID(ev.UDID),
					api.FormatBytes(r.Bytes), r.Files, r.End.Sub(r.Start).Round(100*time.Millisecond))
				continue
			}
			exit = exitFailed
			fmt.Fprintf(w, "%s (%s): backup %s: %s (%s)\n  Fix: %s\n", nameOf(names, ev.UDID), shortUDID(ev.UDID), r.Outcome, r.Summary, r.Cause, r.Fix)
		}
	}
	return exit
}

// barWidth is the progress bar's width in cells.
const barWidth = 20

// progressLine is the live line on a terminal: a bar, the percentage,
// what has come, the rate and the time left.
func progressLine(name, udid string, p *api.Progress) string {
	return fmt.Sprintf("%s (%s) %s", name, shortUDID(udid), progressBar(p))
}

// progressBar is a bar, the percentage, what has come, the rate and the
// time left; backup --wait and status share it.
func progressBar(p *api.Progress) string {
	pct := min(max(p.Percent, 0), 100)
	filled := int(pct / 100 * barWidth)
	bar := strings.Repeat("#", filled) + strings.Repeat("-", barWidth-filled)
	line := fmt.Sprintf("[%s] %3.0f%%  %s  %d files", bar, pct, api.FormatBytes(p.Bytes), p.Files)
	if p.BytesPerSecond > 0 {
		line += fmt.Sprintf("  %s/s", api.FormatBytes(int64(p.BytesPerSecond)))
	}
	if p.ETASeconds > 0 {
		line += "  ETA " + etaString(time.Duration(p.ETASeconds*float64(time.Second)))
	}
	return line
}

// etaString is m:ss, or h:mm:ss from an hour on.
func etaString(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}
