package cause

import "fmt"

// TrendMin is how many failures in a row with the same cause make a
// trend worth telling.
const TrendMin = 3

// Rung is one step of the fix ladder: what to try when a connection
// problem keeps coming back, from the cheapest to the most drastic.
type Rung string

// The rungs, in the order they are tried. RungOwnFix is not on the
// ladder: it stands for the cause's own Fix, for causes the ladder does
// not help (a full disk is not about cables).
const (
	RungReplug        Rung = "replug"
	RungOtherPort     Rung = "other_port_or_cable"
	RungRestartPhone  Rung = "restart_phone"
	RungRepair        Rung = "re_pair"
	RungOwnFix        Rung = "own_fix"
	rungFirstOnLadder      = TrendMin
)

// ladder lists the rungs with what each tells the person.
func ladder() []struct {
	rung Rung
	text string
} {
	return []struct {
		rung Rung
		text string
	}{
		{RungReplug, "unplug the iPhone and plug it in again"},
		{RungOtherPort, "try another USB port on the computer, or another cable, without a hub"},
		{RungRestartPhone, "restart the iPhone, then plug it in again"},
		{RungRepair, "pair again: on the iPhone, Settings > General > Transfer or Reset iPhone > Reset > Reset Location & Privacy, then plug it in and tap Trust"},
	}
}

// usesLadder says which causes the fix ladder helps: the ones where the
// connection between the computer and the iPhone, or the iPhone's own
// state, is the likely culprit. The others (a full or read-only disk, a
// wrong password, a Trust prompt nobody answers, the battery, backupd's
// own decisions) keep their own fix however often they come back.
func usesLadder(c Code) bool {
	switch c {
	case Disconnected, CableUnstable, Stalled, SlowLink, ProtocolError, DeviceSnapshotFailed, Unknown:
		return true
	}
	return false
}

// UsesLadder reports whether the fix ladder applies to c.
func (c Code) UsesLadder() bool { return usesLadder(c) }

// Trend is what a run of failures with one cause says.
type Trend struct {
	Code  Code
	Count int
	// Rung is the next step: a rung of the ladder, or RungOwnFix.
	Rung Rung
	// Text reads "disconnected 3 times in a row: unplug the iPhone and
	// plug it in again".
	Text string
}

// NextStep returns the rung to try after count failures in a row with
// cause c, and what it tells the person: 3 → replug, 4 → another port or
// cable, 5 → restart the phone, 6 and more → pair again, for the causes
// that use the ladder; the cause's own fix for the others.
func NextStep(c Code, count int) (Rung, string) {
	if !usesLadder(c) {
		return RungOwnFix, Lookup(c).Fix
	}
	l := ladder()
	i := min(max(count-rungFirstOnLadder, 0), len(l)-1)
	return l[i].rung, l[i].text
}

// TrendOf reads a device's latest outcomes, newest first, as their causes
// (None for a success, which ends a run of failures), and returns the
// trend when the newest TrendMin or more share one cause that is worth a
// trend: not an informational one such as recent or interrupted.
func TrendOf(causes []Code) (Trend, bool) {
	if len(causes) == 0 || causes[0] == None || Lookup(causes[0]).Severity == SeverityInfo {
		return Trend{}, false
	}
	c := causes[0]
	n := 0
	for _, x := range causes {
		if x != c {
			break
		}
		n++
	}
	if n < TrendMin {
		return Trend{}, false
	}
	rung, text := NextStep(c, n)
	return Trend{Code: c, Count: n, Rung: rung, Text: fmt.Sprintf("%s %d times in a row: %s", c, n, text)}, true
}
