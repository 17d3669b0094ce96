package usbmux

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
)

// fakeClock is the only clock these tests use: time moves when the test
// says so.
type fakeClock struct{ now time.Time }

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// step is one thing that happens to the tracker in a scenario.
type step struct {
	after  time.Duration // advance the clock this much first
	attach string        // UDID to attach
	speed  uint64        // with this speed
	detach string        // UDID to detach
	ptype  [2]string     // UDID and ProductType to set
	poll   bool
	want   []string // transitions expected from this step, as "udid:kind"
}

func run(t *testing.T, tr *StabilityTracker, clk *fakeClock, steps []step) {
	t.Helper()
	for i, s := range steps {
		clk.Advance(s.after)
		var got []Transition
		switch {
		case s.attach != "":
			got = tr.Attach(s.attach, clk.Now(), s.speed)
		case s.detach != "":
			got = tr.Detach(s.detach, clk.Now())
		case s.ptype[0] != "":
			got = tr.SetProductType(s.ptype[0], s.ptype[1], clk.Now())
		case s.poll:
			got = tr.Poll(clk.Now())
		default:
			t.Fatalf("step %d does nothing", i)
		}
		if g, w := names(got), strings.Join(s.want, " "); g != w {
			t.Fatalf("step %d (+%v): transitions %q, want %q", i, s.after, g, w)
		}
	}
}

func names(ts []Transition) string {
	var parts []string
	for _, tr := range ts {
		parts = append(parts, tr.UDID+":"+tr.Kind.String())
	}
	return strings.Join(parts, " ")
}

func newTracker(t *testing.T, cfg StabilityConfig) (*StabilityTracker, *fakeClock) {
	t.Helper()
	tr, err := NewStabilityTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, newFakeClock()
}

func TestStabilityScenarios(t *testing.T) {
	const s = time.Second
	tests := []struct {
		name  string
		steps []step
	}{
		{"settles after 5s", []step{
			{attach: "A"},
			{after: 4*s + 999*time.Millisecond, poll: true},
			{after: time.Millisecond, poll: true, want: []string{"A:present"}},
			{after: time.Minute, poll: true}, // reported once
		}},
		{"late poll still settles", []step{
			{attach: "A"},
			{after: time.Hour, poll: true, want: []string{"A:present"}},
		}},
		{"unplugged during settle never present", []step{
			{attach: "A"},
			{after: 3 * s, detach: "A"},
			{after: 10 * s, poll: true},
		}},
		{"replug restarts the settle time", []step{
			{attach: "A"},
			{after: 3 * s, detach: "A"},
			{after: 1 * s, attach: "A"},
			{after: 4 * s, poll: true}, // 8 s after the first attach, 4 s after the second
			{after: 1 * s, poll: true, want: []string{"A:present"}},
		}},
		{"duplicate attach does not reset settle", []step{
			{attach: "A"},
			{after: 3 * s, attach: "A"}, // a watcher replaying ListDevices
			{after: 2 * s, poll: true, want: []string{"A:present"}},
		}},
		{"detach of present device", []step{
			{attach: "A"},
			{after: 5 * s, poll: true, want: []string{"A:present"}},
			{after: time.Minute, detach: "A", want: []string{"A:absent"}},
			{after: time.Minute, detach: "A"}, // twice: ignored
		}},
		{"detach of a device never seen", []step{
			{detach: "Z"},
		}},
		{"flapping marks cable unstable", []step{
			{attach: "A"},
			{after: 2 * s, detach: "A"},
			{after: 1 * s, attach: "A"},
			{after: 2 * s, detach: "A"},
			{after: 1 * s, attach: "A"},
			{after: 2 * s, detach: "A", want: []string{"A:unstable"}},
			{after: 1 * s, attach: "A"},
			{after: 2 * s, detach: "A"}, // already unstable: no second report
		}},
		{"flaps spread wider than the window do not", []step{
			{attach: "A"},
			{after: 6 * s, poll: true, want: []string{"A:present"}},
			{after: 24 * s, detach: "A", want: []string{"A:absent"}},
			{after: 1 * s, attach: "A"},
			{after: 29 * s, detach: "A"}, // 30 s after the first detach, never present
			{after: 1 * s, attach: "A"},
			{after: 29 * s, detach: "A"}, // exactly 60 s after the first, which has left the window
		}},
		{"quiet period clears it", []step{
			{attach: "A"},
			{after: 1 * s, detach: "A"},
			{after: 1 * s, attach: "A"},
			{after: 1 * s, detach: "A"},
			{after: 1 * s, attach: "A"},
			{after: 1 * s, detach: "A", want: []string{"A:unstable"}},
			{after: 10 * s, attach: "A"},
			{after: 5 * s, poll: true, want: []string{"A:present"}},
			{after: 2*time.Minute - 5*s - time.Millisecond, poll: true},
			{after: time.Millisecond, poll: true, want: []string{"A:stable"}},
		}},
		{"a flap during the quiet period starts it again", []step{
			{attach: "A"},
			{after: 1 * s, detach: "A"},
			{after: 1 * s, attach: "A"},
			{after: 1 * s, detach: "A"},
			{after: 1 * s, attach: "A"},
			{after: 1 * s, detach: "A", want: []string{"A:unstable"}},
			{after: 1 * s, attach: "A"},
			{after: 90 * s, detach: "A"},
			{after: 1 * s, attach: "A"},
			{after: 90 * s, poll: true, want: []string{"A:present"}}, // 90 s since the last attach: still unstable
			{after: 30 * s, poll: true, want: []string{"A:stable"}},
		}},
		{"unstable survives being away", []step{
			{attach: "A"},
			{after: 1 * s, detach: "A"},
			{after: 1 * s, attach: "A"},
			{after: 1 * s, detach: "A"},
			{after: 1 * s, attach: "A"},
			{after: 1 * s, detach: "A", want: []string{"A:unstable"}},
			{after: 3 * time.Hour, poll: true},
			{attach: "A"},
			{after: 2 * time.Minute, poll: true, want: []string{"A:present", "A:stable"}},
		}},
		{"devices are independent and ordered", []step{
			{attach: "B"},
			{after: 1 * s, attach: "A"},
			{after: 1 * s, detach: "A"},
			{after: 10 * s, poll: true, want: []string{"B:present"}},
			{attach: "C"},
			{attach: "A"},
			{after: 5 * s, poll: true, want: []string{"A:present", "C:present"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, clk := newTracker(t, StabilityConfig{})
			run(t, tr, clk, tt.steps)
		})
	}
}

func TestStabilityStatus(t *testing.T) {
	tr, clk := newTracker(t, StabilityConfig{})
	if _, ok := tr.Status("A", clk.Now()); ok {
		t.Fatal("status for a device never seen")
	}
	tr.Attach("A", clk.Now(), SpeedUSB3)
	st, ok := tr.Status("A", clk.Now())
	if !ok || !st.Attached || st.Present || st.Ready() || !st.AttachedSince.Equal(clk.Now()) || st.Speed != SpeedUSB3 {
		t.Fatalf("settling status = %+v", st)
	}
	clk.Advance(5 * time.Second)
	ts := tr.Poll(clk.Now())
	if len(ts) != 1 || !ts[0].Status.Present || !ts[0].Status.Ready() || ts[0].Status.Cause() != cause.None {
		t.Fatalf("present transition = %+v", ts)
	}
	if !ts[0].At.Equal(clk.Now()) {
		t.Errorf("At = %v, want %v", ts[0].At, clk.Now())
	}
	// Three flaps make it unstable: present again, but not ready.
	for range 3 {
		clk.Advance(time.Second)
		tr.Detach("A", clk.Now())
		clk.Advance(time.Second)
		tr.Attach("A", clk.Now(), SpeedUSB3)
	}
	clk.Advance(5 * time.Second)
	tr.Poll(clk.Now())
	st, _ = tr.Status("A", clk.Now())
	if !st.Present || !st.Unstable || st.Ready() || st.Cause() != cause.CableUnstable || st.FlapsInWindow != 3 {
		t.Fatalf("unstable status = %+v", st)
	}
}

func TestStabilityFlapCounts(t *testing.T) {
	tr, clk := newTracker(t, StabilityConfig{})
	// Five flaps ten minutes apart: never unstable, all within the hour.
	for range 5 {
		tr.Attach("A", clk.Now(), 0)
		clk.Advance(10 * time.Minute)
		if ts := tr.Detach("A", clk.Now()); strings.Contains(names(ts), "unstable") {
			t.Fatalf("unstable after spread-out flaps: %v", names(ts))
		}
	}
	st, _ := tr.Status("A", clk.Now())
	if st.RecentFlaps != 5 || st.FlapsInWindow != 1 {
		t.Fatalf("recent %d in window %d, want 5 and 1", st.RecentFlaps, st.FlapsInWindow)
	}
	clk.Advance(30 * time.Minute)
	st, _ = tr.Status("A", clk.Now())
	if st.RecentFlaps != 3 || st.FlapsInWindow != 0 {
		t.Fatalf("30 min later: recent %d in window %d, want 3 and 0", st.RecentFlaps, st.FlapsInWindow)
	}
	// Once the last flap is older than the history, a detached device is
	// forgotten.
	clk.Advance(time.Hour)
	tr.Poll(clk.Now())
	if _, ok := tr.Status("A", clk.Now()); ok {
		t.Fatal("a detached device with no recent flaps is still remembered")
	}
}

func TestSlowLink(t *testing.T) {
	tests := []struct {
		name        string
		productType string
		speed       uint64
		want        bool
	}{
		{"15 Pro on USB 2", "iPhone16,1", SpeedUSB2, true},
		{"15 Pro Max on USB 2", "iPhone16,2", SpeedUSB2, true},
		{"16 Pro on USB 2", "iPhone17,1", SpeedUSB2, true},
		{"16 Pro Max on USB 2", "iPhone17,2", SpeedUSB2, true},
		{"17 Pro on USB 2", "iPhone18,1", SpeedUSB2, true},
		{"17 Pro Max on USB 2", "iPhone18,2", SpeedUSB2, true},
		{"17 Pro on full speed USB", "iPhone18,1", 12_000_000, true},
		{"15 Pro on 5 Gb/s", "iPhone16,1", SpeedUSB3, false},
		{"16 Pro on 10 Gb/s", "iPhone17,1", 10_000_000_000, false},
		{"15 Pro, speed unknown", "iPhone16,1", 0, false},
		{"14 Pro is Lightning", "iPhone15,2", SpeedUSB2, false},
		{"14 Pro Max is Lightning", "iPhone15,3", SpeedUSB2, false},
		{"15 is USB 2", "iPhone15,4", SpeedUSB2, false},
		{"16 is USB 2", "iPhone17,3", SpeedUSB2, false},
		{"17 is USB 2", "iPhone18,3", SpeedUSB2, false},
		{"Air is USB 2", "iPhone18,4", SpeedUSB2, false},
		{"model unknown", "", SpeedUSB2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := USB3Capable(tt.productType) && tt.speed != 0 && tt.speed <= SpeedUSB2; got != tt.want {
				t.Fatalf("test table disagrees with USB3Capable for %s", tt.productType)
			}
			want := []string{}
			if tt.want {
				want = []string{"A:slow_link"}
			}
			// Model known before the device settles: reported with present.
			tr, clk := newTracker(t, StabilityConfig{})
			run(t, tr, clk, []step{
				{attach: "A", speed: tt.speed},
				{ptype: [2]string{"A", tt.productType}},
				{after: 5 * time.Second, poll: true, want: append([]string{"A:present"}, want...)},
				{after: time.Minute, attach: "A", speed: tt.speed}, // a replay: no second report
			})
			st, _ := tr.Status("A", clk.Now())
			if st.SlowLink != tt.want || (st.Cause() == cause.SlowLink) != tt.want {
				t.Errorf("status SlowLink %v cause %q, want %v", st.SlowLink, st.Cause(), tt.want)
			}
			// Model learned from lockdown after the device is present.
			tr, clk = newTracker(t, StabilityConfig{})
			run(t, tr, clk, []step{
				{attach: "A", speed: tt.speed},
				{after: 5 * time.Second, poll: true, want: []string{"A:present"}},
				{after: time.Second, ptype: [2]string{"A", tt.productType}, want: want},
				{ptype: [2]string{"A", tt.productType}},
			})
		})
	}
}

func TestSlowLinkReportedAgainAfterReplug(t *testing.T) {
	tr, clk := newTracker(t, StabilityConfig{})
	run(t, tr, clk, []step{
		{attach: "A", speed: SpeedUSB2},
		{ptype: [2]string{"A", "iPhone16,2"}},
		{after: 5 * time.Second, poll: true, want: []string{"A:present", "A:slow_link"}},
		{after: time.Minute, detach: "A", want: []string{"A:absent"}},
		{after: time.Minute, attach: "A", speed: SpeedUSB3},
		{after: 5 * time.Second, poll: true, want: []string{"A:present"}},
		{after: time.Minute, detach: "A", want: []string{"A:absent"}},
		{after: time.Minute, attach: "A", speed: SpeedUSB2},
		{after: 5 * time.Second, poll: true, want: []string{"A:present", "A:slow_link"}},
	})
}

func TestNextDeadline(t *testing.T) {
	tr, clk := newTracker(t, StabilityConfig{})
	if _, ok := tr.NextDeadline(); ok {
		t.Fatal("deadline with no devices")
	}
	start := clk.Now()
	tr.Attach("A", start, 0)
	clk.Advance(2 * time.Second)
	tr.Attach("B", clk.Now(), 0)
	if d, ok := tr.NextDeadline(); !ok || !d.Equal(start.Add(5*time.Second)) {
		t.Fatalf("deadline = %v %v, want A's settle", d, ok)
	}
	// Drive the tracker by its own deadlines, as the watcher will.
	var got []string
	for range 10 {
		d, ok := tr.NextDeadline()
		if !ok {
			break
		}
		clk.now = d
		for _, x := range tr.Poll(clk.Now()) {
			got = append(got, fmt.Sprintf("%s:%s@%v", x.UDID, x.Kind, x.At.Sub(start)))
		}
	}
	if g := strings.Join(got, " "); g != "A:present@5s B:present@7s" {
		t.Fatalf("driven by deadlines: %s", g)
	}
	// An unstable device's deadline is its quiet period.
	for range 3 {
		clk.Advance(time.Second)
		tr.Detach("A", clk.Now())
		clk.Advance(time.Second)
		tr.Attach("A", clk.Now(), 0)
	}
	attached := clk.Now()
	clk.Advance(5 * time.Second)
	tr.Poll(clk.Now())
	if d, ok := tr.NextDeadline(); !ok || !d.Equal(attached.Add(2*time.Minute)) {
		t.Fatalf("deadline = %v, want the end of the quiet period %v", d, attached.Add(2*time.Minute))
	}
}

func TestStabilityConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     StabilityConfig
		want    StabilityConfig
		wantErr string
	}{
		{name: "zero takes defaults", cfg: StabilityConfig{}, want: DefaultStabilityConfig()},
		{
			name: "set fields kept",
			cfg:  StabilityConfig{Settle: time.Second, FlapCount: 5, FlapWindow: time.Minute, QuietPeriod: 5 * time.Minute, FlapHistory: 24 * time.Hour, SlowLinkMax: 12_000_000},
			want: StabilityConfig{Settle: time.Second, FlapCount: 5, FlapWindow: time.Minute, QuietPeriod: 5 * time.Minute, FlapHistory: 24 * time.Hour, SlowLinkMax: 12_000_000},
		},
		{name: "negative settle", cfg: StabilityConfig{Settle: -1}, wantErr: "settle must not be negative"},
		{name: "negative count", cfg: StabilityConfig{FlapCount: -1, QuietPeriod: -time.Second}, wantErr: "flap count must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := NewStabilityTracker(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tr.Config(); got != tt.want {
				t.Fatalf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCustomConfig(t *testing.T) {
	tr, clk := newTracker(t, StabilityConfig{Settle: time.Second, FlapCount: 2, FlapWindow: 10 * time.Second, QuietPeriod: 30 * time.Second})
	run(t, tr, clk, []step{
		{attach: "A"},
		{after: time.Second, poll: true, want: []string{"A:present"}},
		{after: time.Second, detach: "A", want: []string{"A:absent"}},
		{attach: "A"},
		{after: time.Second, poll: true, want: []string{"A:present"}},
		{after: 8 * time.Second, detach: "A", want: []string{"A:absent", "A:unstable"}},
		{attach: "A"},
		{after: 30 * time.Second, poll: true, want: []string{"A:present", "A:stable"}},
	})
}

func TestTimeGoingBackwards(t *testing.T) {
	tr, clk := newTracker(t, StabilityConfig{})
	tr.Attach("A", clk.Now(), 0)
	// An event stamped earlier than one already seen is taken as now.
	tr.Detach("A", clk.Now().Add(-time.Hour))
	tr.Attach("A", clk.Now().Add(-time.Hour), 0)
	clk.Advance(5 * time.Second)
	if ts := tr.Poll(clk.Now()); names(ts) != "A:present" {
		t.Fatalf("transitions %q", names(ts))
	}
}

func TestTransitionKindString(t *testing.T) {
	if s := TransitionKind(99).String(); s != "TransitionKind(99)" {
		t.Errorf("String = %q", s)
	}
}

// TestConcurrentUse is for -race: the watcher writes while the API reads.
func TestConcurrentUse(t *testing.T) {
	tr, clk := newTracker(t, StabilityConfig{})
	start := clk.Now()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			udid := fmt.Sprintf("D%d", g)
			for i := range 200 {
				at := start.Add(time.Duration(i) * time.Second)
				tr.Attach(udid, at, SpeedUSB2)
				tr.SetProductType(udid, "iPhone16,1", at)
				tr.Poll(at.Add(500 * time.Millisecond))
				tr.Statuses(at)
				tr.NextDeadline()
				tr.Detach(udid, at.Add(900*time.Millisecond))
			}
		})
	}
	wg.Wait()
	if n := len(tr.Statuses(start.Add(time.Hour))); n != 4 {
		t.Fatalf("%d devices, want 4", n)
	}
}
