package web

import (
	"fmt"
	"strings"
	"time"

	"github.com/backupd/backupd/daemon/api"
)

// card is one phone as the overview shows it, and as its page heads it.
type card struct {
	UDID, Name, Model, IOS string
	Connected              bool
	Link                   string
	State                  api.State
	StateText              string
	// Tone colours the state: ok, busy, warn, bad or idle.
	Tone        string
	Progress    *progressView
	LastSuccess time.Time
	Age         string // of LastSuccess: "3 hours ago"
	Overdue     bool
	// Problem is what stands in the way now, or what went wrong last.
	Problem *problem
	Trend   string
}

type progressView struct {
	Percent float64
	Text    string // "42% · 1.2 GiB, 3,410 files"
	Rate    string
	ETA     string
	// Thinking, when set, says the phone is quiet at a point where real
	// iPhones think, so that nobody unplugs it.
	Thinking string
}

// problem is a cause in words, with its fix.
type problem struct {
	Title   string // "Waiting", "Last attempt failed"
	At      time.Time
	Cause   string
	Summary string
	Fix     string
	Note    string
}

func (s *Server) card(d api.Device) card {
	c := card{
		UDID: d.UDID, Name: displayName(d.Name), Model: d.ProductType, IOS: d.IOSVersion,
		Connected: d.Connected, Link: d.Link, State: d.State, LastSuccess: d.LastSuccess,
		Overdue: overdue(d, s.now(), s.opts.OverdueAfter),
	}
	if !d.LastSuccess.IsZero() {
		c.Age = ago(s.now(), d.LastSuccess)
	}
	c.StateText, c.Tone = stateWords(d)
	if d.State == api.StateBackingUp && d.Progress != nil {
		c.Progress = progressOf(d.Progress)
	}
	switch {
	case d.Cause != "" && d.State != api.StateSucceeded && d.State != api.StateUpToDate:
		c.Problem = &problem{Title: "Why", Cause: string(d.Cause), Summary: d.Summary, Fix: d.Fix, Note: d.Note}
	case d.LastAttempt != nil && d.LastAttempt.Outcome != api.OutcomeSuccess &&
		d.LastAttempt.Outcome != api.OutcomeRunning && d.LastAttempt.Cause != "":
		r := d.LastAttempt
		c.Problem = &problem{Title: "Last attempt " + outcomeWords(r.Outcome), At: r.Start, Cause: string(r.Cause), Summary: r.Summary, Fix: r.Fix, Note: r.Note}
	}
	if d.Trend != nil {
		c.Trend = d.Trend.Text
	}
	return c
}

func displayName(n string) string {
	if strings.TrimSpace(n) == "" {
		return "iPhone"
	}
	return n
}

// overdue is status's rule: no success for longer than after, counted
// from the first sighting of a phone never backed up.
func overdue(d api.Device, now time.Time, after time.Duration) bool {
	since := d.LastSuccess
	if since.IsZero() {
		since = d.FirstSeen
	}
	return after > 0 && !since.IsZero() && now.Sub(since) > after
}

// stateWords says a device's state to a person, with its tone.
func stateWords(d api.Device) (string, string) {
	switch d.State {
	case api.StateAbsent, "":
		return "Not connected", "idle"
	case api.StateSettling:
		return "Just connected, settling", "busy"
	case api.StateChecking:
		return "Checking trust, battery and space", "busy"
	case api.StateWaiting:
		if !d.NextAttempt.IsZero() {
			return "Waiting; next try " + d.NextAttempt.UTC().Format("15:04 UTC"), "warn"
		}
		return "Waiting", "warn"
	case api.StateQueued:
		return "Queued behind another backup", "busy"
	case api.StateBackingUp:
		return "Backing up now", "busy"
	case api.StateAwaitingPasscode:
		return "Enter the passcode on the iPhone to start the backup", "warn"
	case api.StateSucceeded:
		return "Backed up", "ok"
	case api.StateFailed:
		return "The last backup failed", "bad"
	case api.StateSkipped:
		return "Skipped", "warn"
	case api.StateUpToDate:
		return "Up to date", "ok"
	case api.StateIgnored:
		return "Not backed up: the configuration excludes it", "idle"
	}
	return strings.ReplaceAll(string(d.State), "_", " "), "idle"
}

func outcomeWords(o string) string {
	switch o {
	case api.OutcomeSuccess:
		return "succeeded"
	case api.OutcomeRunning:
		return "running"
	}
	return o
}

func progressOf(p *api.Progress) *progressView {
	v := &progressView{Percent: p.Percent}
	v.Text = fmt.Sprintf("%.0f%% · %s, %d files", p.Percent, api.FormatBytes(p.Bytes), p.Files)
	if p.BytesPerSecond > 0 {
		v.Rate = api.FormatBytes(int64(p.BytesPerSecond)) + "/s"
	}
	if p.ETASeconds > 0 {
		v.ETA = roughly(time.Duration(p.ETASeconds*float64(time.Second))) + " left"
	}
	if !p.ThinkingSince.IsZero() {
		v.Thinking = "The iPhone is preparing its data (quiet since " + p.ThinkingSince.Local().Format("15:04") +
			"). This is normal: keep it connected."
	}
	return v
}

// roughly says a duration in one or two units.
func roughly(d time.Duration) string {
	switch {
	case d < time.Second:
		return "under a second"
	case d < time.Minute:
		return plural(int(d.Seconds()+0.5), "second")
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		return plural(int(d/time.Hour), "hour")
	}
	return plural(int(d/(24*time.Hour)), "day")
}

// ago says how long ago t was, as status does.
func ago(now, t time.Time) string {
	d := now.Sub(t)
	if d < time.Minute {
		return "just now"
	}
	return roughly(d) + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// runRow is one line of a phone's runs table.
type runRow struct {
	api.Run
	Duration string
	Size     string
}

func rowOf(r api.Run) runRow {
	row := runRow{Run: r}
	if !r.End.IsZero() && r.End.After(r.Start) {
		row.Duration = roughly(r.End.Sub(r.Start))
	}
	if r.Bytes > 0 || r.Files > 0 {
		row.Size = fmt.Sprintf("%s, %d files", api.FormatBytes(r.Bytes), r.Files)
	}
	return row
}

// timelineDays is how far back a phone's timeline reaches.
const timelineDays = 90

// Timeline geometry, in the SVG's own units (it scales to the page).
const (
	tlWidth  = 900
	tlLeft   = 110 // room for the lane labels
	tlRight  = 10
	tlLaneH  = 28
	tlTop    = 8
	tlMarkW  = 4
	tlMarkH  = 18
	tlAxisH  = 24
	tlLabelX = 4
)

// timeline is the SVG chart of a phone's runs: one lane per kind of
// outcome, one mark per run, placed by its start.
type timeline struct {
	Width, Height int
	Lanes         []lane
	Marks         []mark
	Ticks         []tick
	Count         int
	Summary       string // for screen readers: the counts in words
}

type lane struct {
	Label string
	Y     int // top of the lane
	TextY int
}

type mark struct {
	X, Y  float64
	W, H  int
	Class string
	Title string
}

type tick struct {
	X      float64
	Label  string
	Y      int
	Anchor string // the label's text-anchor: the edges' stay inside
}

// laneOf puts an outcome in a lane: 0 backed up (and running), 1 failed
// or interrupted, 2 skipped.
func laneOf(outcome string) int {
	switch outcome {
	case api.OutcomeSuccess, api.OutcomeRunning:
		return 0
	case api.OutcomeSkipped:
		return 2
	}
	return 1
}

func buildTimeline(runs []api.Run, now time.Time) timeline {
	from := now.Add(-timelineDays * 24 * time.Hour)
	labels := []string{"Backed up", "Failed", "Skipped"}
	tl := timeline{Width: tlWidth, Height: tlTop + len(labels)*tlLaneH + tlAxisH}
	for i, l := range labels {
		y := tlTop + i*tlLaneH
		tl.Lanes = append(tl.Lanes, lane{Label: l, Y: y, TextY: y + tlLaneH/2 + 5})
	}
	plot := float64(tlWidth - tlLeft - tlRight)
	xOf := func(t time.Time) float64 {
		f := float64(t.Sub(from)) / float64(now.Sub(from))
		return float64(tlLeft) + min(max(f, 0), 1)*plot
	}
	for d := timelineDays; d >= 0; d -= 15 {
		tk := tick{X: xOf(now.Add(-time.Duration(d) * 24 * time.Hour)), Label: fmt.Sprintf("%d days ago", d), Y: tlTop + len(labels)*tlLaneH + 16, Anchor: "middle"}
		if d == 0 {
			tk.Label, tk.Anchor = "today", "end"
		}
		tl.Ticks = append(tl.Ticks, tk)
	}
	counts := map[string]int{}
	for _, r := range runs {
		if r.Start.Before(from) {
			continue
		}
		l := laneOf(r.Outcome)
		title := r.Start.UTC().Format("2006-01-02 15:04 UTC") + ": " + outcomeWords(r.Outcome)
		if r.Cause != "" && r.Outcome != api.OutcomeSuccess {
			title += " (" + string(r.Cause) + ") " + r.Summary
		}
		tl.Marks = append(tl.Marks, mark{
			X: xOf(r.Start) - tlMarkW/2, Y: float64(tlTop + l*tlLaneH + (tlLaneH-tlMarkH)/2),
			W: tlMarkW, H: tlMarkH, Class: "o-" + r.Outcome, Title: title,
		})
		counts[r.Outcome]++
		tl.Count++
	}
	var parts []string
	for _, o := range []string{api.OutcomeSuccess, api.OutcomeFailed, api.OutcomeInterrupted, api.OutcomeSkipped, api.OutcomeRunning} {
		if n := counts[o]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, outcomeWords(o)))
		}
	}
	tl.Summary = fmt.Sprintf("%s in the last %d days", plural(tl.Count, "run"), timelineDays)
	if len(parts) > 0 {
		tl.Summary += ": " + strings.Join(parts, ", ")
	}
	return tl
}
