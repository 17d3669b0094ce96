package hook

import (
	"testing"
	"time"
)

func TestOverdue(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	a := Backed{UDID: "a", LastSuccess: t0}
	never := Backed{UDID: "never"}
	// Each step checks at a time with the devices' state then.
	type step struct {
		at       time.Time
		devs     []Backed
		wantDue  []string
		wantNext time.Time
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"not yet overdue", []step{{t0.Add(6 * day), []Backed{a}, nil, t0.Add(7 * day)}}},
		{"overdue once per period", []step{
			{t0.Add(7 * day), []Backed{a}, []string{"a"}, t0.Add(14 * day)},
			{t0.Add(7*day + time.Hour), []Backed{a}, nil, t0.Add(14 * day)},
			{t0.Add(13 * day), []Backed{a}, nil, t0.Add(14 * day)},
			{t0.Add(14 * day), []Backed{a}, []string{"a"}, t0.Add(21 * day)},
		}},
		{"already overdue at start is reported once", []step{
			{t0.Add(30 * day), []Backed{a}, []string{"a"}, t0.Add(35 * day)},
			{t0.Add(31 * day), []Backed{a}, nil, t0.Add(35 * day)},
		}},
		{"a new success starts over", []step{
			{t0.Add(8 * day), []Backed{a}, []string{"a"}, t0.Add(14 * day)},
			{t0.Add(9 * day), []Backed{{UDID: "a", LastSuccess: t0.Add(9 * day)}}, nil, t0.Add(16 * day)},
			{t0.Add(16 * day), []Backed{{UDID: "a", LastSuccess: t0.Add(9 * day)}}, []string{"a"}, t0.Add(23 * day)},
		}},
		{"never backed up: never reported", []step{
			{t0.Add(100 * day), []Backed{never}, nil, time.Time{}},
		}},
		{"the earliest next of two", []step{
			{t0.Add(day), []Backed{a, {UDID: "b", LastSuccess: t0.Add(-3 * day)}, never}, nil, t0.Add(4 * day)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &Overdue{After: 7 * day}
			for i, s := range tt.steps {
				due, next := o.Check(s.at, s.devs)
				var got []string
				for _, d := range due {
					got = append(got, d.UDID)
				}
				if len(got) != len(s.wantDue) || (len(got) > 0 && got[0] != s.wantDue[0]) {
					t.Errorf("step %d: due %v, want %v", i, got, s.wantDue)
				}
				if !next.Equal(s.wantNext) {
					t.Errorf("step %d: next %v, want %v", i, next, s.wantNext)
				}
			}
		})
	}
}
