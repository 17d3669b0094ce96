package store

import (
	"bytes"
	"cmp"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
)

func TestRunKeyOrder(t *testing.T) {
	times := []time.Time{
		time.Unix(0, -1<<62),
		time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, -1),
		time.Unix(0, 0),
		time.Unix(0, 1),
		t0,
		t0.Add(time.Nanosecond),
		time.Date(2200, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)),
	}
	for i := 1; i < len(times); i++ {
		a, b := runKey(times[i-1], 999), runKey(times[i], 1)
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("key of %v (%x) is not before key of %v (%x)", times[i-1], a, times[i], b)
		}
	}
	// At the same instant, the id decides.
	if bytes.Compare(runKey(t0, 1), runKey(t0, 2)) >= 0 {
		t.Error("same start: id 1 is not before id 2")
	}
	if keyID(runKey(t0, 12345)) != 12345 {
		t.Error("keyID does not read the id back")
	}
}

// history builds a store with runs of A and B, one a minute, A's outcomes
// in a fixed rotation, and returns them as BeginRun or RecordSkip
// returned them.
func history(t *testing.T, s *Store, n int) []Run {
	t.Helper()
	outcomes := []Outcome{OutcomeSuccess, OutcomeFailed, OutcomeSkipped, OutcomeSuccess, OutcomeInterrupted}
	var all []Run
	for i := range n {
		udid := "A"
		if i%4 == 3 {
			udid = "B"
		}
		start := t0.Add(time.Duration(i) * time.Minute)
		o := outcomes[i%len(outcomes)]
		var r Run
		var err error
		if o == OutcomeSkipped {
			r = run(udid, start)
			r.Cause = cause.BatteryLow
			r, err = s.RecordSkip(r)
		} else {
			r = begin(t, s, run(udid, start))
			r.Outcome, r.End = o, start.Add(30*time.Second)
			if o == OutcomeFailed {
				r.Cause = []cause.Code{cause.Disconnected, cause.PasscodeNotEntered}[i%2]
			}
			r, err = s.FinishRun(r)
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	return all
}

func TestHistoryPages(t *testing.T) {
	s := newStore(t)
	all := history(t, s, 47)
	// One still running, newest of all.
	running := begin(t, s, run("A", t0.Add(time.Hour)))
	all = append(all, running)

	select_ := func(udid string, outcomes ...Outcome) []RunID {
		var want []RunID
		for _, r := range slices.Backward(all) {
			if (udid == "" || r.UDID == udid) && (len(outcomes) == 0 || slices.Contains(outcomes, r.Outcome)) {
				want = append(want, r.ID)
			}
		}
		return want
	}
	cases := []struct {
		name     string
		udid     string
		limit    int
		outcomes []Outcome
	}{
		{"A by 5", "A", 5, nil},
		{"A by 1", "A", 1, nil},
		{"A all at once", "A", 0, nil},
		{"A by exactly its size", "A", len(select_("A")), nil},
		{"B by 4", "B", 4, nil},
		{"A failures by 3", "A", 3, []Outcome{OutcomeFailed}},
		{"A failed or interrupted by 2", "A", 2, []Outcome{OutcomeFailed, OutcomeInterrupted}},
		{"A running", "A", 10, []Outcome{OutcomeRunning}},
		{"A none", "A", 10, []Outcome{"no such outcome"}},
		{"unknown device", "C", 10, nil},
		{"everyone by 7", "", 7, nil},
		{"everyone's skips by 2", "", 2, []Outcome{OutcomeSkipped}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := select_(c.udid, c.outcomes...)
			var got []RunID
			q := HistoryQuery{Limit: c.limit, Outcomes: c.outcomes}
			for pages := 0; ; pages++ {
				if pages > len(all)+1 {
					t.Fatal("the pages do not end")
				}
				page, err := s.History(c.udid, q)
				if err != nil {
					t.Fatal(err)
				}
				limit := c.limit
				if limit == 0 {
					limit = DefaultHistoryLimit
				}
				if len(page.Runs) > limit {
					t.Fatalf("page of %d runs, limit %d", len(page.Runs), limit)
				}
				if page.Next != "" && len(page.Runs) < limit {
					t.Fatalf("a short page (%d of %d) with a next page", len(page.Runs), limit)
				}
				got = append(got, ids(page.Runs)...)
				if page.Next == "" {
					break
				}
				q.Cursor = page.Next
			}
			if !slices.Equal(got, want) {
				t.Errorf("history %v\nwant      %v", got, want)
			}
		})
	}
	t.Run("records", func(t *testing.T) {
		page, err := s.History("A", HistoryQuery{Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Runs) != 2 || !runsEqual(page.Runs[0], running) {
			t.Errorf("first page %+v; want the running run first", page.Runs)
		}
	})
}

func TestHistoryCursor(t *testing.T) {
	s := newStore(t)
	history(t, s, 20)
	first, err := s.History("A", HistoryQuery{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	next, err := s.History("A", HistoryQuery{Limit: 3, Cursor: first.Next})
	if err != nil {
		t.Fatal(err)
	}
	// A cursor still works when the run it ends on is gone, and when runs
	// were added since.
	if _, err := s.Prune(t0.Add(time.Hour), Retention{MaxRuns: 2}); err != nil {
		t.Fatal(err)
	}
	begin(t, s, run("A", t0.Add(2*time.Hour)))
	again, err := s.History("A", HistoryQuery{Limit: 3, Cursor: first.Next})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range again.Runs {
		if !r.Start.Before(first.Runs[2].Start) {
			t.Errorf("after the cursor came run %d of %v, not older than %v", r.ID, r.Start, first.Runs[2].Start)
		}
	}
	if len(next.Runs) == 0 {
		t.Fatal("no second page")
	}
	for _, bad := range []string{"!!", "AAAA", encodeCursor([]byte("short"))} {
		if _, err := s.History("A", HistoryQuery{Cursor: bad}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: %v; want ErrBadCursor", bad, err)
		}
	}
}

func TestHistoryLimitCap(t *testing.T) {
	s := newStore(t)
	history(t, s, MaxHistoryLimit+5)
	page, err := s.History("", HistoryQuery{Limit: MaxHistoryLimit * 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Runs) != MaxHistoryLimit || page.Next == "" {
		t.Errorf("%d runs, next %q; want %d and a next page", len(page.Runs), page.Next, MaxHistoryLimit)
	}
}

func TestLatestPerDevice(t *testing.T) {
	s := newStore(t)
	if runs, err := s.LatestPerDevice(); err != nil || len(runs) != 0 {
		t.Fatalf("empty store: %v, %v", runs, err)
	}
	all := history(t, s, 30)
	// A device with facts and no runs is not in the list.
	if err := s.UpsertDevice(DeviceFacts{UDID: "0-NEW", Name: "new"}, t0); err != nil {
		t.Fatal(err)
	}
	latest, err := s.LatestPerDevice()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Run{}
	for _, r := range all {
		want[r.UDID] = r
	}
	if len(latest) != len(want) {
		t.Fatalf("%d latest runs, want %d: %v", len(latest), len(want), latest)
	}
	for _, r := range latest {
		if !runsEqual(r, want[r.UDID]) {
			t.Errorf("latest of %s: %+v\nwant %+v", r.UDID, r, want[r.UDID])
		}
	}
	if !slices.IsSortedFunc(latest, func(a, b Run) int { return cmp.Compare(a.UDID, b.UDID) }) {
		t.Error("not in UDID order")
	}
}

func TestRunsBetween(t *testing.T) {
	s := newStore(t)
	all := history(t, s, 10) // t0, t0+1m, ... t0+9m
	cases := []struct {
		name     string
		from, to time.Time
		want     []RunID
	}{
		{"all", time.Time{}, time.Time{}, ids(all)},
		{"from is inclusive, to exclusive", t0.Add(2 * time.Minute), t0.Add(5 * time.Minute), ids(all[2:5])},
		{"no upper bound", t0.Add(8 * time.Minute), time.Time{}, ids(all[8:])},
		{"between two runs", t0.Add(90 * time.Second), t0.Add(150 * time.Second), ids(all[2:3])},
		{"before everything", t0.Add(-time.Hour), t0, nil},
		{"after everything", t0.Add(time.Hour), time.Time{}, nil},
		{"empty range", t0.Add(5 * time.Minute), t0.Add(5 * time.Minute), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.RunsBetween(c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), c.want) {
				t.Errorf("RunsBetween(%v, %v) = %v, want %v", c.from, c.to, ids(got), c.want)
			}
		})
	}
}

func TestFailuresByCause(t *testing.T) {
	s := newStore(t)
	all := history(t, s, 40)
	for _, since := range []time.Time{{}, t0.Add(13 * time.Minute), t0.Add(time.Hour)} {
		want := map[cause.Code]int{}
		for _, r := range all {
			if !r.Start.Before(since) && (r.Outcome == OutcomeFailed || r.Outcome == OutcomeInterrupted) {
				want[r.Cause]++
			}
		}
		got, err := s.FailuresByCause(since)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("FailuresByCause(%v) = %v, want %v", since, got, want)
		}
		if since.IsZero() && (got[cause.Interrupted] == 0 || got[cause.Disconnected] == 0 || got[cause.BatteryLow] != 0) {
			t.Errorf("the test history lacks interrupted or failed runs, or counted skips: %v", got)
		}
	}
}

func TestPrune(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	// The history: A has 10 runs, one a minute from t0, where run 3 (the
	// 3rd, index 2) is its latest success and the newest is running; B
	// has 3 old failed runs.
	type setup struct {
		a, b []Run
	}
	build := func(t *testing.T, s *Store) setup {
		var st setup
		for i := range 10 {
			r := begin(t, s, run("A", t0.Add(time.Duration(i)*time.Minute)))
			switch {
			case i == 9:
			case i == 2:
				r = finish(t, s, r, OutcomeSuccess, r.Start.Add(time.Second))
			default:
				r.Cause = cause.Disconnected
				r = finish(t, s, r, OutcomeFailed, r.Start.Add(time.Second))
			}
			st.a = append(st.a, r)
		}
		for i := range 3 {
			r := begin(t, s, run("B", t0.Add(-time.Duration(10-i)*time.Hour)))
			st.b = append(st.b, finish(t, s, r, OutcomeFailed, r.Start.Add(time.Second)))
		}
		return st
	}
	pick := func(runs []Run, idx ...int) []RunID {
		var out []RunID
		for _, i := range idx {
			out = append(out, runs[i].ID)
		}
		return out
	}
	cases := []struct {
		name          string
		device        string // PruneDevice when set
		ret           Retention
		keepA, keepB  []int // indexes into setup.a and setup.b
		wantDeletions int
	}{
		{name: "nothing", keepA: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, keepB: []int{0, 1, 2}},
		{name: "keep 3", ret: Retention{MaxRuns: 3},
			// The newest 3 of A are 7, 8, 9 (9 running); 2 is its latest
			// success. B keeps its newest 3.
			keepA: []int{2, 7, 8, 9}, keepB: []int{0, 1, 2}, wantDeletions: 6},
		{name: "keep 1", ret: Retention{MaxRuns: 1},
			keepA: []int{2, 9}, keepB: []int{2}, wantDeletions: 8 + 2},
		{name: "by age", ret: Retention{MaxAge: now.Sub(t0.Add(5 * time.Minute))},
			// Runs from t0+5m on are young enough; B is all old but
			// keeps its latest run.
			keepA: []int{2, 5, 6, 7, 8, 9}, keepB: []int{2}, wantDeletions: 4 + 2},
		{name: "count and age", ret: Retention{MaxRuns: 6, MaxAge: now.Sub(t0.Add(2 * time.Minute))},
			keepA: []int{2, 4, 5, 6, 7, 8, 9}, keepB: []int{2}, wantDeletions: 3 + 2},
		{name: "age keeps everything", ret: Retention{MaxAge: 365 * 24 * time.Hour},
			keepA: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, keepB: []int{0, 1, 2}},
		{name: "one device", device: "B", ret: Retention{MaxRuns: 1},
			keepA: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, keepB: []int{2}, wantDeletions: 2},
		{name: "unknown device", device: "C", ret: Retention{MaxRuns: 1},
			keepA: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, keepB: []int{0, 1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newStore(t)
			st := build(t, s)
			var n int
			var err error
			if c.device != "" {
				n, err = s.PruneDevice(c.device, now, c.ret)
			} else {
				n, err = s.Prune(now, c.ret)
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != c.wantDeletions {
				t.Errorf("deleted %d, want %d", n, c.wantDeletions)
			}
			for _, dev := range []struct {
				udid string
				runs []Run
				keep []int
			}{{"A", st.a, c.keepA}, {"B", st.b, c.keepB}} {
				page, err := s.History(dev.udid, HistoryQuery{Limit: MaxHistoryLimit})
				if err != nil {
					t.Fatal(err)
				}
				want := pick(dev.runs, dev.keep...)
				slices.Reverse(want)
				if got := ids(page.Runs); !slices.Equal(got, want) {
					t.Errorf("%s keeps %v, want %v", dev.udid, got, want)
				}
				for _, r := range dev.runs {
					_, err := s.Run(r.ID)
					if kept := slices.Contains(want, r.ID); kept != (err == nil) {
						t.Errorf("Run(%d) after prune: %v; kept %v", r.ID, err, kept)
					}
				}
			}
			if all, _ := s.RunsBetween(time.Time{}, time.Time{}); len(all) != len(c.keepA)+len(c.keepB) {
				t.Errorf("%d runs left in runs, want %d", len(all), len(c.keepA)+len(c.keepB))
			}
			if latest, err := s.LatestPerDevice(); err != nil || len(latest) != 2 {
				t.Errorf("LatestPerDevice after prune: %v, %v", latest, err)
			}
			if err := s.Check(); err != nil {
				t.Errorf("Check after prune: %v", err)
			}
		})
	}
	t.Run("negative", func(t *testing.T) {
		s := newStore(t)
		for _, ret := range []Retention{{MaxRuns: -1}, {MaxAge: -time.Hour}} {
			if _, err := s.Prune(now, ret); !errors.Is(err, ErrInvalid) {
				t.Errorf("Prune(%+v): %v", ret, err)
			}
		}
	})
}

// A new run after pruning gets a new id, never one of the pruned runs'.
func TestIDsNotReused(t *testing.T) {
	s := newStore(t)
	var last RunID
	for i := range 5 {
		r := begin(t, s, run("A", t0.Add(time.Duration(i)*time.Minute)))
		last = finish(t, s, r, OutcomeFailed, r.Start).ID
	}
	if _, err := s.Prune(t0.Add(time.Hour), Retention{MaxRuns: 1}); err != nil {
		t.Fatal(err)
	}
	if r := begin(t, s, run("A", t0.Add(time.Hour))); r.ID != last+1 {
		t.Errorf("id %d after pruning, want %d", r.ID, last+1)
	}
}

func TestParseRunID(t *testing.T) {
	for _, c := range []struct {
		in   string
		want RunID
		ok   bool
	}{{"1", 1, true}, {"18446744073709551615", 1<<64 - 1, true}, {"0", 0, false}, {"-1", 0, false}, {"x", 0, false}, {"", 0, false}} {
		got, err := ParseRunID(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseRunID(%q) = %d, %v", c.in, got, err)
		}
		if c.ok && got.String() != c.in {
			t.Errorf("%d.String() = %q", got, got.String())
		}
	}
}
