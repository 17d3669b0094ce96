package store

import (
	"errors"
	"testing"
	"time"
)

// FuzzHistoryCursor: a cursor comes from a client and is opaque to it;
// any string is a page or ErrBadCursor, never a panic, and a page never
// holds a run at or after the run its cursor names.
func FuzzHistoryCursor(f *testing.F) {
	s := newStore(f)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range 6 {
		begin(f, s, run([]string{"A", "B"}[i%2], t0.Add(time.Duration(i)*time.Hour)))
	}
	first, err := s.History("", HistoryQuery{Limit: 2})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(first.Next, "")
	f.Add(first.Next, "A")
	f.Add("", "B")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAAA", "")
	f.Add("!!", "A")
	f.Fuzz(func(t *testing.T, cursor, udid string) {
		page, err := s.History(udid, HistoryQuery{Limit: 3, Cursor: cursor})
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("History(%q, %q): %v, want ErrBadCursor", udid, cursor, err)
			}
			return
		}
		if len(page.Runs) > 3 {
			t.Fatalf("%d runs, limit 3", len(page.Runs))
		}
		if cursor == "" {
			return
		}
		before, _ := decodeCursor(cursor)
		for _, r := range page.Runs {
			if k := runKey(r.Start, r.ID); string(k) >= string(before) {
				t.Fatalf("run %d (key %x) is not before the cursor's key %x", r.ID, k, before)
			}
		}
	})
}
