// Package metrics keeps backupd's Prometheus metrics and writes them in
// Prometheus's text exposition format (version 0.0.4), by hand: the
// format is small and a client library would be the daemon's largest
// dependency.
//
// The counters and the duration histogram count from the daemon's start,
// as every Prometheus counter does (rate() and increase() handle the
// reset at a restart); the history holds the long view. The last success
// of each device comes from the history at start, so it survives a
// restart.
//
//	backupd_runs_total{outcome,cause}             counter: runs ended (skips included)
//	backupd_backup_bytes_total                    counter: bytes received by backups
//	backupd_backup_duration_seconds{outcome}      histogram: how long backups ran (not skips)
//	backupd_last_success_timestamp_seconds{udid,name}  gauge: end of each device's latest success
//	backupd_devices_connected                     gauge
//	backupd_backups_running                       gauge
//	backupd_usbmuxd_up                            gauge: 1 while usbmuxd answers
//	backupd_build_info{version,goversion}         gauge: always 1
package metrics

import (
	"bufio"
	"cmp"
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DurationBuckets are the histogram's upper bounds in seconds: from half
// a minute (an incremental backup of a phone that changed little) to four
// hours (a first backup of a full 1 TB phone over USB 2).
var DurationBuckets = []float64{30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}

// Gauges are the daemon's current figures, read at each scrape.
type Gauges struct {
	DevicesConnected int
	BackupsRunning   int
	UsbmuxdUp        bool
}

// Run is an ended run, as the metrics count it.
type Run struct {
	UDID, Name string
	// Outcome is success, failed, skipped or interrupted.
	Outcome string
	// Cause is the cause code, empty for a clean success.
	Cause    string
	Bytes    int64
	Duration time.Duration
	// End is when it ended; a success's End is the device's last success.
	End time.Time
}

// Options configure Metrics.
type Options struct {
	// Version is build_info's version label.
	Version string
	// Gauges returns the current figures; nil reports zeros.
	Gauges func() Gauges
}

// Metrics holds the figures. Its methods may be called concurrently.
type Metrics struct {
	opts Options

	mu    sync.Mutex
	runs  map[runKey]uint64
	bytes uint64
	hist  map[string]*histogram // by outcome
	last  map[string]lastSuccess
}

type runKey struct{ outcome, cause string }

type lastSuccess struct {
	name string
	at   time.Time
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	n      uint64
}

// New returns empty metrics.
func New(opts Options) *Metrics {
	return &Metrics{
		opts: opts,
		runs: map[runKey]uint64{},
		hist: map[string]*histogram{},
		last: map[string]lastSuccess{},
	}
}

// ObserveRun counts an ended run. A skip has no duration or bytes; a
// success moves the device's last success.
func (m *Metrics) ObserveRun(r Run) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs[runKey{r.Outcome, r.Cause}]++
	if r.Bytes > 0 {
		m.bytes += uint64(r.Bytes)
	}
	if r.Outcome != "skipped" {
		h := m.hist[r.Outcome]
		if h == nil {
			h = &histogram{counts: make([]uint64, len(DurationBuckets)+1)}
			m.hist[r.Outcome] = h
		}
		s := max(r.Duration.Seconds(), 0)
		i, _ := slices.BinarySearch(DurationBuckets, s) // first bound >= s
		h.counts[i]++
		h.sum += s
		h.n++
	}
	if r.Outcome == "success" {
		m.setLastSuccess(r.UDID, r.Name, r.End)
	}
}

// SetLastSuccess records a device's latest success, as read from the
// history at start. An older time than the one held is ignored.
func (m *Metrics) SetLastSuccess(udid, name string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLastSuccess(udid, name, at)
}

func (m *Metrics) setLastSuccess(udid, name string, at time.Time) {
	if udid == "" || at.IsZero() {
		return
	}
	old, ok := m.last[udid]
	if ok && old.at.After(at) {
		return
	}
	if name == "" {
		name = old.name
	}
	m.last[udid] = lastSuccess{name: name, at: at}
}

// ServeHTTP writes the metrics for a scrape.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = m.WriteTo(w)
}

// Handler serves the metrics at /metrics and nothing else.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m)
	return mux
}

// WriteTo writes the metrics in the text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	var g Gauges
	if m.opts.Gauges != nil {
		g = m.opts.Gauges()
	}
	cw := &countWriter{w: bufio.NewWriter(w)}
	e := &encoder{w: cw}

	m.mu.Lock()
	e.family("backupd_runs_total", "counter", "Backup runs ended since backupd started, by outcome (success, failed, skipped, interrupted) and cause (empty for a clean success).")
	keys := make([]runKey, 0, len(m.runs))
	for k := range m.runs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b runKey) int {
		return cmp.Or(cmp.Compare(a.outcome, b.outcome), cmp.Compare(a.cause, b.cause))
	})
	for _, k := range keys {
		e.sample("backupd_runs_total", []string{"outcome", k.outcome, "cause", k.cause}, float64(m.runs[k]))
	}

	e.family("backupd_backup_bytes_total", "counter", "Bytes of file content received by backups since backupd started.")
	e.sample("backupd_backup_bytes_total", nil, float64(m.bytes))

	e.family("backupd_backup_duration_seconds", "histogram", "How long backups ran, by outcome; skips are not counted.")
	outcomes := make([]string, 0, len(m.hist))
	for o := range m.hist {
		outcomes = append(outcomes, o)
	}
	slices.Sort(outcomes)
	for _, o := range outcomes {
		h := m.hist[o]
		var cum uint64
		for i, le := range DurationBuckets {
			cum += h.counts[i]
			e.sample("backupd_backup_duration_seconds_bucket", []string{"outcome", o, "le", formatFloat(le)}, float64(cum))
		}
		e.sample("backupd_backup_duration_seconds_bucket", []string{"outcome", o, "le", "+Inf"}, float64(h.n))
		e.sample("backupd_backup_duration_seconds_sum", []string{"outcome", o}, h.sum)
		e.sample("backupd_backup_duration_seconds_count", []string{"outcome", o}, float64(h.n))
	}

	e.family("backupd_last_success_timestamp_seconds", "gauge", "When each device's latest successful backup ended, in seconds since the Unix epoch.")
	udids := make([]string, 0, len(m.last))
	for u := range m.last {
		udids = append(udids, u)
	}
	slices.Sort(udids)
	for _, u := range udids {
		l := m.last[u]
		e.sample("backupd_last_success_timestamp_seconds", []string{"udid", u, "name", l.name}, float64(l.at.UnixMilli())/1000)
	}
	m.mu.Unlock()

	e.family("backupd_devices_connected", "gauge", "iPhones connected now.")
	e.sample("backupd_devices_connected", nil, float64(g.DevicesConnected))
	e.family("backupd_backups_running", "gauge", "Backups running now.")
	e.sample("backupd_backups_running", nil, float64(g.BackupsRunning))
	e.family("backupd_usbmuxd_up", "gauge", "1 while backupd is connected to usbmuxd, else 0.")
	up := 0.0
	if g.UsbmuxdUp {
		up = 1
	}
	e.sample("backupd_usbmuxd_up", nil, up)
	e.family("backupd_build_info", "gauge", "Always 1; the labels say which backupd this is.")
	e.sample("backupd_build_info", []string{"version", m.opts.Version, "goversion", runtime.Version()}, 1)

	if cw.err == nil {
		cw.err = cw.w.(*bufio.Writer).Flush()
	}
	return cw.n, cw.err
}

// encoder writes families and samples.
type encoder struct{ w io.Writer }

func (e *encoder) family(name, typ, help string) {
	io.WriteString(e.w, "# HELP "+name+" "+escapeHelp(help)+"\n# TYPE "+name+" "+typ+"\n")
}

// sample writes one line; labels are name, value pairs.
func (e *encoder) sample(name string, labels []string, v float64) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		}
		b.WriteByte('}')
	}
	b.WriteString(" " + formatFloat(v) + "\n")
	io.WriteString(e.w, b.String())
}

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// escapeLabel escapes a label value: a device's name is whatever its
// owner typed, quotes and backslashes included.
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

func escapeHelp(s string) string { return helpEscaper.Replace(s) }

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', -1, 64) // counts read as counts
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// countWriter counts what it writes and keeps the first error, so the
// encoder need not check each write.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
