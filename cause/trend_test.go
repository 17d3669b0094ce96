package cause

import (
	"strings"
	"testing"
)

func TestNextStep(t *testing.T) {
	tests := []struct {
		code  Code
		count int
		want  Rung
	}{
		{Disconnected, 3, RungReplug},
		{Disconnected, 4, RungOtherPort},
		{Disconnected, 5, RungRestartPhone},
		{Disconnected, 6, RungRepair},
		{Disconnected, 40, RungRepair},
		{CableUnstable, 3, RungReplug},
		{Stalled, 5, RungRestartPhone},
		{Disconnected, 1, RungReplug}, // below the trend: the first rung
		{HostDiskFull, 3, RungOwnFix},
		{HostDiskFull, 9, RungOwnFix},
		{HostNotWritable, 4, RungOwnFix},
		{WrongBackupPassword, 6, RungOwnFix},
		{TrustPending, 5, RungOwnFix},
		{BatteryLow, 3, RungOwnFix},
	}
	for _, tt := range tests {
		rung, text := NextStep(tt.code, tt.count)
		if rung != tt.want || text == "" {
			t.Errorf("NextStep(%s, %d) = %q, %q; want rung %q", tt.code, tt.count, rung, text, tt.want)
		}
		if rung == RungOwnFix && text != Lookup(tt.code).Fix {
			t.Errorf("NextStep(%s): %q, want the cause's own fix", tt.code, text)
		}
	}
}

// TestLadderTextsDiffer: each rung tells something new.
func TestLadderTextsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for n := TrendMin; n < TrendMin+4; n++ {
		_, text := NextStep(Disconnected, n)
		if seen[text] {
			t.Errorf("rung at %d repeats %q", n, text)
		}
		seen[text] = true
	}
}

func TestTrendOf(t *testing.T) {
	tests := []struct {
		name   string
		causes []Code // newest first
		ok     bool
		code   Code
		count  int
		rung   Rung
	}{
		{"none", nil, false, None, 0, ""},
		{"latest succeeded", []Code{None, Disconnected, Disconnected, Disconnected}, false, None, 0, ""},
		{"two only", []Code{Disconnected, Disconnected, None}, false, None, 0, ""},
		{"three", []Code{Disconnected, Disconnected, Disconnected}, true, Disconnected, 3, RungReplug},
		{"three then a success", []Code{Stalled, Stalled, Stalled, None, Stalled}, true, Stalled, 3, RungReplug},
		{"four", []Code{Disconnected, Disconnected, Disconnected, Disconnected, HostDiskFull}, true, Disconnected, 4, RungOtherPort},
		{"broken by another cause", []Code{Disconnected, Disconnected, Stalled, Disconnected}, false, None, 0, ""},
		{"six", []Code{CableUnstable, CableUnstable, CableUnstable, CableUnstable, CableUnstable, CableUnstable}, true, CableUnstable, 6, RungRepair},
		{"disk full keeps its fix", []Code{HostDiskFull, HostDiskFull, HostDiskFull, HostDiskFull}, true, HostDiskFull, 4, RungOwnFix},
		{"informational is no trend", []Code{Interrupted, Interrupted, Interrupted}, false, None, 0, ""},
		{"recent is no trend", []Code{Recent, Recent, Recent}, false, None, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, ok := TrendOf(tt.causes)
			if ok != tt.ok || tr.Code != tt.code || tr.Count != tt.count || tr.Rung != tt.rung {
				t.Fatalf("TrendOf = %+v, %t; want %s×%d rung %q, %t", tr, ok, tt.code, tt.count, tt.rung, tt.ok)
			}
			if ok {
				_, step := NextStep(tt.code, tt.count)
				if !strings.HasPrefix(tr.Text, string(tt.code)+" ") || !strings.Contains(tr.Text, " times in a row") || !strings.HasSuffix(tr.Text, step) {
					t.Fatalf("text %q", tr.Text)
				}
			}
		})
	}
}

// TestLadderPerCode: every known code says whether it uses the ladder,
// and the storage and trust causes do not.
func TestLadderPerCode(t *testing.T) {
	for _, c := range []Code{HostDiskFull, HostNotWritable, WrongBackupPassword, TrustPending, TrustDenied, DeviceLocked, PasscodeNotEntered, BatteryLow, UsbmuxdUnavailable, Recent, QuietHours, Interrupted} {
		if c.UsesLadder() {
			t.Errorf("%s uses the cable ladder", c)
		}
	}
	for _, c := range []Code{Disconnected, CableUnstable, Stalled} {
		if !c.UsesLadder() {
			t.Errorf("%s does not use the ladder", c)
		}
	}
}
