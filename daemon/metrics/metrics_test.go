package metrics

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sample is one parsed line of the exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parse reads the text format strictly: every sample belongs to a family
// announced by a # TYPE line before it, label values are unescaped, and
// anything else is an error. It returns the samples and each family's
// type.
func parse(r io.Reader) ([]sample, map[string]string, error) {
	types := map[string]string{}
	var out []sample
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "# TYPE "):
			f := strings.Fields(line)
			if len(f) != 4 {
				return nil, nil, fmt.Errorf("line %d: %q", n, line)
			}
			if _, dup := types[f[2]]; dup {
				return nil, nil, fmt.Errorf("line %d: second TYPE for %s", n, f[2])
			}
			types[f[2]] = f[3]
			continue
		case strings.HasPrefix(line, "# HELP "):
			continue
		case line == "" || strings.HasPrefix(line, "#"):
			return nil, nil, fmt.Errorf("line %d: unexpected %q", n, line)
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(rest, "{ "); i > 0 {
			s.name, rest = rest[:i], rest[i:]
		}
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				eq := strings.Index(rest, `="`)
				if eq < 0 {
					return nil, nil, fmt.Errorf("line %d: bad labels %q", n, line)
				}
				key := rest[:eq]
				rest = rest[eq+2:]
				var val strings.Builder
				for {
					if rest == "" {
						return nil, nil, fmt.Errorf("line %d: unterminated label", n)
					}
					c := rest[0]
					rest = rest[1:]
					if c == '"' {
						break
					}
					if c == '\\' {
						switch rest[0] {
						case '\\', '"':
							val.WriteByte(rest[0])
						case 'n':
							val.WriteByte('\n')
						default:
							return nil, nil, fmt.Errorf("line %d: bad escape", n)
						}
						rest = rest[1:]
						continue
					}
					if c == '\n' {
						return nil, nil, fmt.Errorf("line %d: raw newline", n)
					}
					val.WriteByte(c)
				}
				s.labels[key] = val.String()
				rest = strings.TrimPrefix(rest, ",")
			}
			rest = rest[1:]
		}
		v, err := strconv.ParseFloat(strings.TrimPrefix(rest, " "), 64)
		if err != nil || !strings.HasPrefix(rest, " ") {
			return nil, nil, fmt.Errorf("line %d: value of %q: %v", n, line, err)
		}
		s.value = v
		fam := s.name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(fam, suf); ok && types[base] == "histogram" {
				fam = base
			}
		}
		if types[fam] == "" {
			return nil, nil, fmt.Errorf("line %d: %s has no TYPE before it", n, s.name)
		}
		out = append(out, s)
	}
	return out, types, sc.Err()
}

// find returns the value of the sample with name and labels.
func find(samples []sample, name string, labels ...string) (float64, bool) {
next:
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels)/2 {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

func scrape(t *testing.T, m *Metrics) []sample {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content type %q", ct)
	}
	samples, types, err := parse(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"backupd_runs_total": "counter", "backupd_backup_bytes_total": "counter",
		"backupd_backup_duration_seconds": "histogram", "backupd_last_success_timestamp_seconds": "gauge",
		"backupd_devices_connected": "gauge", "backupd_backups_running": "gauge", "backupd_usbmuxd_up": "gauge",
		"backupd_build_info": "gauge",
	}
	for name, typ := range want {
		if types[name] != typ {
			t.Errorf("# TYPE %s is %q, want %q", name, types[name], typ)
		}
	}
	return samples
}

func TestScrape(t *testing.T) {
	g := Gauges{DevicesConnected: 2, BackupsRunning: 1, UsbmuxdUp: true}
	m := New(Options{Version: "1.2.3", Gauges: func() Gauges { return g }})
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	weird := "Anna's \"big\" iPhone\\\nsecond line"
	m.SetLastSuccess("old", "Old Phone", t0.Add(-48*time.Hour))
	m.SetLastSuccess("u1", "stale name", t0.Add(-time.Hour))
	m.ObserveRun(Run{UDID: "u1", Name: weird, Outcome: "success", Bytes: 1000, Duration: 45 * time.Second, End: t0})
	m.ObserveRun(Run{UDID: "u1", Name: weird, Outcome: "success", Bytes: 500, Duration: 10 * time.Minute, End: t0.Add(-2 * time.Hour)})
	m.ObserveRun(Run{UDID: "u1", Outcome: "failed", Cause: "host_disk_full", Bytes: 24, Duration: 5 * time.Hour, End: t0})
	m.ObserveRun(Run{UDID: "u2", Outcome: "skipped", Cause: "battery_low", End: t0})
	m.ObserveRun(Run{UDID: "u2", Outcome: "skipped", Cause: "battery_low", End: t0})

	s := scrape(t, m)
	checks := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"backupd_runs_total", []string{"outcome", "success", "cause", ""}, 2},
		{"backupd_runs_total", []string{"outcome", "failed", "cause", "host_disk_full"}, 1},
		{"backupd_runs_total", []string{"outcome", "skipped", "cause", "battery_low"}, 2},
		{"backupd_backup_bytes_total", nil, 1524},
		{"backupd_backup_duration_seconds_bucket", []string{"outcome", "success", "le", "30"}, 0},
		{"backupd_backup_duration_seconds_bucket", []string{"outcome", "success", "le", "60"}, 1},
		{"backupd_backup_duration_seconds_bucket", []string{"outcome", "success", "le", "600"}, 2},
		{"backupd_backup_duration_seconds_bucket", []string{"outcome", "success", "le", "+Inf"}, 2},
		{"backupd_backup_duration_seconds_sum", []string{"outcome", "success"}, 645},
		{"backupd_backup_duration_seconds_count", []string{"outcome", "success"}, 2},
		{"backupd_backup_duration_seconds_bucket", []string{"outcome", "failed", "le", "14400"}, 0},
		{"backupd_backup_duration_seconds_bucket", []string{"outcome", "failed", "le", "+Inf"}, 1},
		// The latest success wins over an older one reported later, and
		// the name comes with it, escaped and read back intact.
		{"backupd_last_success_timestamp_seconds", []string{"udid", "u1", "name", weird}, float64(t0.Unix())},
		{"backupd_last_success_timestamp_seconds", []string{"udid", "old", "name", "Old Phone"}, float64(t0.Add(-48 * time.Hour).Unix())},
		{"backupd_devices_connected", nil, 2},
		{"backupd_backups_running", nil, 1},
		{"backupd_usbmuxd_up", nil, 1},
		{"backupd_build_info", []string{"version", "1.2.3", "goversion", runtime.Version()}, 1},
	}
	for _, c := range checks {
		got, ok := find(s, c.name, c.labels...)
		if !ok {
			t.Errorf("no %s%v", c.name, c.labels)
			continue
		}
		if got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := find(s, "backupd_backup_duration_seconds_count", "outcome", "skipped"); ok {
		t.Error("skips are in the duration histogram")
	}
	if _, ok := find(s, "backupd_last_success_timestamp_seconds", "udid", "u2", "name", ""); ok {
		t.Error("a device without a success has a last success")
	}
	// Gauges are read at each scrape.
	g = Gauges{}
	s = scrape(t, m)
	if v, _ := find(s, "backupd_usbmuxd_up"); v != 0 {
		t.Errorf("usbmuxd_up = %v after it went down", v)
	}
}

// TestBucketsCumulative: every histogram's buckets never decrease and end
// at its count.
func TestBucketsCumulative(t *testing.T) {
	m := New(Options{})
	for i, d := range []time.Duration{0, 30 * time.Second, 31 * time.Second, time.Hour, 10 * time.Hour} {
		m.ObserveRun(Run{UDID: "u", Outcome: "success", Duration: d, End: time.Unix(int64(i), 0)})
	}
	s := scrape(t, m)
	var prev float64
	var n int
	for _, x := range s {
		if x.name != "backupd_backup_duration_seconds_bucket" {
			continue
		}
		if x.value < prev {
			t.Errorf("bucket le=%s is %v, below the one before (%v)", x.labels["le"], x.value, prev)
		}
		prev = x.value
		n++
		// Bounds are inclusive: 30s falls in le="30".
		if x.labels["le"] == "30" && x.value != 2 {
			t.Errorf("le=30 holds %v, want 2 (0s and 30s)", x.value)
		}
	}
	if n != len(DurationBuckets)+1 || prev != 5 {
		t.Errorf("%d buckets ending at %v, want %d ending at 5", n, prev, len(DurationBuckets)+1)
	}
}

func TestOnlyMetricsPath(t *testing.T) {
	srv := httptest.NewServer(New(Options{}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / = %d, want 404", resp.StatusCode)
	}
	resp, err = http.Post(srv.URL+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %d, want 405", resp.StatusCode)
	}
}

// BenchmarkScrape reports what a scrape costs with 20 devices and a
// spread of causes.
func BenchmarkScrape(b *testing.B) {
	m := New(Options{Version: "x"})
	causes := []string{"", "host_disk_full", "disconnected", "battery_low", "stalled"}
	for i := range 2000 {
		m.ObserveRun(Run{UDID: fmt.Sprint("u", i%20), Name: "iPhone", Outcome: []string{"success", "failed", "skipped"}[i%3],
			Cause: causes[i%len(causes)], Bytes: 1 << 20, Duration: time.Duration(i) * time.Second, End: time.Unix(int64(i), 0)})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
