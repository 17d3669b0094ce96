package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/daemon/offline"
	"github.com/backupd/backupd/store"
)

func historyCommand() command {
	return command{
		name: "history", args: "[UDID] [--json] [--limit N] [--page N] [--outcome X]", does: "list past backups and why any failed",
		flags: func(fs *flag.FlagSet) runner {
			var outcome string
			var asJSON bool
			var limit, pageNo int
			fs.BoolVar(&asJSON, "json", false, "print JSON")
			fs.IntVar(&limit, "limit", 20, "the most runs to show: the page size")
			fs.IntVar(&pageNo, "page", 1, "which page of --limit runs to show, newest first")
			fs.StringVar(&outcome, "outcome", "", "only runs with this outcome: success, failed, skipped, interrupted, running (comma-separated for several)")
			return func(ctx context.Context, a *app, pos []string) error {
				q, err := historyQuery(pos, limit, pageNo, outcome)
				if err != nil {
					return err
				}
				return history(ctx, a, q, pageNo, asJSON)
			}
		},
	}
}

// historyQuery checks history's arguments and makes its query.
func historyQuery(pos []string, limit, pageNo int, outcome string) (api.RunsQuery, error) {
	q := api.RunsQuery{Limit: limit}
	switch {
	case len(pos) > 1:
		return q, fail(exitUsage, "one UDID at most")
	case limit <= 0:
		return q, fail(exitUsage, "--limit must be more than 0")
	case pageNo <= 0:
		return q, fail(exitUsage, "--page must be 1 or more")
	}
	if len(pos) == 1 {
		q.UDID = pos[0]
	}
	for o := range strings.SplitSeq(outcome, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		switch o {
		case api.OutcomeRunning, api.OutcomeSuccess, api.OutcomeFailed, api.OutcomeSkipped, api.OutcomeInterrupted:
			q.Outcomes = append(q.Outcomes, o)
		default:
			return q, fail(exitUsage, "--outcome %q: want success, failed, skipped, interrupted or running", o)
		}
	}
	return q, nil
}

// history prints page pageNo of the runs q asks for, from the daemon or,
// when none runs, from the history database.
func history(ctx context.Context, a *app, q api.RunsQuery, pageNo int, asJSON bool) error {
	cfg, err := a.config()
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var page api.RunsPage
	noDaemon := false
	err = retryInUse(ctx, func() error {
		// Earlier pages are walked through by their cursors: a cursor
		// stays right however many runs are added meanwhile.
		q.Cursor = ""
		for p := 1; p <= pageNo; p++ {
			var err error
			page, err = c.Runs(ctx, q)
			noDaemon = errors.Is(err, client.ErrNoDaemon)
			if noDaemon {
				page, err = historyFromStore(cfg, q)
			}
			if err != nil {
				return err
			}
			if p < pageNo && page.Next == "" {
				page = api.RunsPage{}
				break
			}
			q.Cursor = page.Next
		}
		return nil
	})
	runs := page.Runs
	if noDaemon {
		fmt.Fprintln(a.stderr, "daemon not running; reading the history directly")
	}
	if err != nil {
		return err
	}
	for i := range runs {
		fillCause(&runs[i])
	}
	if asJSON {
		if runs == nil {
			runs = []api.Run{}
		}
		return writeJSON(a.stdout, runs)
	}
	if len(runs) == 0 {
		fmt.Fprintln(a.stdout, "no runs")
	}
	for _, r := range runs {
		fmt.Fprintln(a.stdout, historyLine(r))
	}
	if page.Next != "" {
		// A hint, on stderr with the other remarks, so that stdout stays
		// a run a line.
		fmt.Fprintf(a.stderr, "older runs: --page %d\n", pageNo+1)
	}
	return nil
}

func historyFromStore(cfg fileConfig, q api.RunsQuery) (api.RunsPage, error) {
	st, err := openHistory(cfg)
	if err != nil || st == nil {
		return api.RunsPage{}, err
	}
	defer st.Close()
	hq := store.HistoryQuery{Limit: q.Limit, Cursor: q.Cursor}
	for _, o := range q.Outcomes {
		hq.Outcomes = append(hq.Outcomes, store.Outcome(o))
	}
	page, err := st.History(q.UDID, hq)
	if err != nil {
		return api.RunsPage{}, err
	}
	out := api.RunsPage{Next: page.Next}
	for _, r := range page.Runs {
		out.Runs = append(out.Runs, *offline.RunView(r))
	}
	return out, nil
}

func historyLine(r api.Run) string {
	var b strings.Builder
	name := r.DeviceName
	if name == "" {
		name = "iPhone"
	}
	fmt.Fprintf(&b, "%s  %s (%s)  %s  %s", r.Start.Local().Format("2006-01-02 15:04:05"), name, shortUDID(r.UDID), r.Trigger, r.Outcome)
	if r.Kind != "" {
		fmt.Fprintf(&b, " %s", r.Kind)
	}
	if r.Kind == api.KindRestore {
		fmt.Fprintf(&b, " from %s of %s", orDash(r.Version), shortUDID(r.Source))
	}
	if r.Bytes > 0 || r.Files > 0 {
		fmt.Fprintf(&b, "  %s, %d files", api.FormatBytes(r.Bytes), r.Files)
	}
	if !r.End.IsZero() {
		fmt.Fprintf(&b, "  in %s", r.End.Sub(r.Start).Round(100*time.Millisecond))
	}
	if r.Cause != "" {
		fmt.Fprintf(&b, "  %s: %s Fix: %s", r.Cause, r.Summary, r.Fix)
	}
	return b.String()
}
