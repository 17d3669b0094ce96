package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"github.com/backupd/backupd/daemon/offline"
	"github.com/backupd/backupd/store"
	"github.com/backupd/backupd/usbmux"
)

func cmdHistory(args []string, stdout, stderr io.Writer) int {
	var config, outcome string
	var asJSON bool
	var limit, pageNo int
	fs := newFlagSet("history", "[UDID] [--json] [--limit N] [--page N] [--outcome X]", &config)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.IntVar(&limit, "limit", 20, "the most runs to show: the page size")
	fs.IntVar(&pageNo, "page", 1, "which page of --limit runs to show, newest first")
	fs.StringVar(&outcome, "outcome", "", "only runs with this outcome: success, failed, skipped, interrupted, running (comma-separated for several)")
	pos, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		fmt.Fprintln(stderr, "backupd history: one UDID at most")
		return exitUsage
	}
	if limit <= 0 {
		fmt.Fprintln(stderr, "backupd history: --limit must be more than 0")
		return exitUsage
	}
	if pageNo <= 0 {
		fmt.Fprintln(stderr, "backupd history: --page must be 1 or more")
		return exitUsage
	}
	q := api.RunsQuery{Limit: limit}
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
			fmt.Fprintf(stderr, "backupd history: --outcome %q: want success, failed, skipped, interrupted or running\n", o)
			return exitUsage
		}
	}
	cfg, code, ok := configFor(config, stderr)
	if !ok {
		return code
	}

	c := client.New(socketPath(cfg))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var page api.RunsPage
	noDaemon := false
	err := retryInUse(ctx, func() error {
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
		fmt.Fprintln(stderr, "daemon not running; reading the history directly")
	}
	if err != nil {
		return clientError(stderr, "history", err)
	}
	for i := range runs {
		fillCause(&runs[i])
	}
	if asJSON {
		if runs == nil {
			runs = []api.Run{}
		}
		return writeJSON(stdout, runs)
	}
	if len(runs) == 0 {
		fmt.Fprintln(stdout, "no runs")
	}
	for _, r := range runs {
		fmt.Fprintln(stdout, historyLine(r))
	}
	if page.Next != "" {
		// A hint, on stderr with the other remarks, so that stdout stays
		// a run a line.
		fmt.Fprintf(stderr, "older runs: --page %d\n", pageNo+1)
	}
	return exitOK
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

func writeJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitError
	}
	return exitOK
}

// plugged is a device usbmuxd lists, for `devices` without a daemon.
type plugged struct {
	UDID     string `json:"udid"`
	Name     string `json:"name,omitempty"`
	ConnType string `json:"conn_type"`
	Speed    uint64 `json:"link_speed,omitempty"`
	// Trust is usbmux's verdict (trusted, trust_pending, device_locked,
	// ...); TrustError says why there is none.
	Trust      usbmux.Trust `json:"trust,omitempty"`
	TrustError string       `json:"trust_error,omitempty"`
}

// devicesReport is what `devices --json` prints.
type devicesReport struct {
	DaemonRunning bool         `json:"daemon_running"`
	Devices       []api.Device `json:"devices,omitempty"`
	// Plugged is what usbmuxd lists, when no daemon runs.
	Plugged []plugged `json:"plugged,omitempty"`
}

func cmdDevices(args []string, stdout, stderr io.Writer) int {
	var config string
	var asJSON bool
	fs := newFlagSet("devices", "[--json]", &config)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	pos, code, ok := parseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "backupd devices: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	cfg, code, ok := configFor(config, stderr)
	if !ok {
		return code
	}
	c := client.New(socketPath(cfg))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	devs, err := c.Devices(ctx)
	if err == nil {
		if asJSON {
			if devs == nil {
				devs = []api.Device{}
			}
			return writeJSON(stdout, devicesReport{DaemonRunning: true, Devices: devs})
		}
		if len(devs) == 0 {
			fmt.Fprintln(stdout, "no iPhone seen yet")
		}
		for _, d := range devs {
			conn := "not connected"
			if d.Connected {
				conn = "connected over " + d.Link
				if d.LinkSpeed > 0 {
					conn += fmt.Sprintf(" %d Mbit/s", d.LinkSpeed/1e6)
				}
			}
			state := strings.ReplaceAll(string(d.State), "_", " ")
			if d.Cause != "" {
				// Trust, lock and the other reasons a phone waits.
				state += fmt.Sprintf(" (%s)", d.Cause)
			}
			fmt.Fprintf(stdout, "%s  %s  %s iOS %s  %s, %s\n", d.UDID, orDash(d.Name), orDash(d.ProductType), orDash(d.IOSVersion), conn, state)
		}
		return exitOK
	}
	if !errors.Is(err, client.ErrNoDaemon) {
		return clientError(stderr, "devices", err)
	}

	// No daemon: ask usbmuxd.
	fmt.Fprintln(stderr, "daemon not running; asking usbmuxd directly")
	addr := usbmux.DefaultAddr()
	if cfg.Usbmuxd != "" {
		if addr, err = usbmux.ParseAddr(cfg.Usbmuxd); err != nil {
			fmt.Fprintf(stderr, "backupd devices: %v\n", err)
			return exitBadConfig
		}
	}
	mux := usbmux.NewClient(usbmux.Config{Addr: addr})
	list, err := mux.ListDevices(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "backupd devices: usbmuxd at %s: %v\n", addr, err)
		return exitNoDaemon
	}
	rep := devicesReport{Plugged: []plugged{}}
	for _, d := range list {
		p := plugged{UDID: d.UDID, ConnType: d.ConnType, Speed: d.Speed}
		// Asking never raises a Trust prompt: that is the daemon's to do.
		if p.Trust, err = mux.CheckTrust(ctx, d, usbmux.TrustOptions{}); err != nil {
			p.TrustError = err.Error()
		} else if p.Trust == usbmux.Trusted {
			if f, err := mux.Facts(ctx, d); err == nil {
				p.Name = f.Name
			}
		}
		rep.Plugged = append(rep.Plugged, p)
	}
	if asJSON {
		writeJSON(stdout, rep)
		return exitNoDaemon
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no iPhone plugged in")
	}
	for _, d := range rep.Plugged {
		fmt.Fprintf(stdout, "%s  %s  %s", d.UDID, orDash(d.Name), d.ConnType)
		if d.Speed > 0 {
			fmt.Fprintf(stdout, " %d Mbit/s", d.Speed/1e6)
		}
		switch {
		case d.TrustError != "":
			fmt.Fprintf(stdout, "  trust unknown: %s", d.TrustError)
		case d.Trust == usbmux.Trusted:
			fmt.Fprint(stdout, "  trusted")
		default:
			in := cause.Lookup(d.Trust.Cause())
			fmt.Fprintf(stdout, "  %s: %s", d.Trust, in.Fix)
		}
		fmt.Fprintln(stdout)
	}
	return exitNoDaemon
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
