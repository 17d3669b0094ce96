package backup

import (
	"context"
	"fmt"
	"time"

	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/usbmux"
)

// Real iPhones go quiet for minutes at known points of a backup: while
// they wait for their passcode or prepare the snapshot, while they scan
// before the first upload, while they process a Manifest.db they
// downloaded, and while they build and re-download the manifest at the
// end. In a restore they do so before their first message, after they
// downloaded the manifest and before the first file, and after the last
// file while they apply the restore. libimobiledevice waits forever. backupd tells such a phone from a
// dead link: a silence is a stall unless
//
//   - it falls between two messages (a device writes a message in one go:
//     one that starts and stops is broken, not thinking),
//   - it follows a point known to be slow (see thinkPhase),
//   - the socket is open (the read timed out; EOF or a reset is a
//     disconnect, as before), and
//   - usbmuxd still lists the phone, asked each time the stall timeout
//     runs out,
//
// and even then for no longer than Options.ThinkTimeout since the last
// byte.

// thinkPhase says what the phone is doing while the host waits for its
// next message, for the points where a long silence is normal.
type thinkPhase int

const (
	// busy: a silence here is a stall.
	busy thinkPhase = iota
	// preparing: before the first message, the phone asks for its
	// passcode or takes its snapshot.
	preparing
	// scanning: before the first upload the phone lists what changed.
	scanning
	// digesting: after a download the phone reads what it got (a large
	// Manifest.db takes minutes).
	digesting
	// finishing: after an upload round, which may have been the last:
	// the phone builds Manifest.db or re-downloads the manifest.
	finishing
	// restoring: in a restore, after the phone downloaded the backup's
	// manifest and before its first file request, or after the last
	// file, when it applies the restore.
	restoring
)

func (p thinkPhase) String() string {
	switch p {
	case preparing:
		return "before its first message (passcode or snapshot)"
	case scanning:
		return "before its first upload (scanning)"
	case digesting:
		return "after a download (reading what it got)"
	case finishing:
		return "after an upload (building or re-reading its manifest)"
	case restoring:
		return "after a download (reading the backup's manifest, or applying the restore after the last file)"
	}
	return "in the middle of the exchange"
}

// phaseAfter is the phase that follows a message the device sent, given
// whether an upload round has already happened.
func phaseAfter(name string, uploaded bool) thinkPhase {
	switch {
	case name == devicelink.MsgDownloadFiles:
		return digesting
	case name == devicelink.MsgUploadFiles:
		return finishing
	case !uploaded:
		return scanning
	}
	return busy
}

// restorePhaseAfter is phaseAfter for a restore, where the phone pulls
// and never uploads: it thinks before its first download whatever it
// asked, after the downloads before its first data file (reading the
// manifest), and after the last data file (applying the restore).
// Between two batches of files a silence is a stall.
func restorePhaseAfter(name string, downloaded, slow bool) thinkPhase {
	switch {
	case name == devicelink.MsgDownloadFiles && slow:
		return restoring
	case name == devicelink.MsgDownloadFiles:
		return busy
	case !downloaded:
		return preparing
	}
	return busy
}

// thinker judges the silences of one session's link. Its fields are used
// from the session's goroutine only, as the link's reads are.
type thinker struct {
	// present asks usbmuxd whether the phone is still listed.
	present func() bool
	// limit bounds one silence, from the last byte.
	limit time.Duration
	// onThink is told, each time the stall timeout runs out, that the
	// phone is quiet but present, so that watchdogs above do not count
	// the silence.
	onThink func(quiet time.Duration)

	phase thinkPhase
	// mark is the link's byte count when the wait in phase began: bytes
	// since mean a message is under way.
	mark int64
	// told: this silence has been logged.
	told bool
}

// expect notes that the host now waits for the device's next message in
// phase p.
func (t *thinker) expect(p thinkPhase, nread int64) {
	t.phase, t.mark, t.told = p, nread, false
}

// judge is called when a read has timed out after quiet without a byte
// either way. ok says the wait may go on; otherwise why, if not empty,
// says what made the silence a stall.
func (t *thinker) judge(quiet time.Duration, nread int64) (ok bool, why string) {
	switch {
	case t.phase == busy || nread != t.mark:
		// In the middle of a message the session says so itself.
		return false, ""
	case quiet >= t.limit:
		return false, fmt.Sprintf("the iPhone, still listed by usbmuxd, sent nothing %s for %v, the longest a phone may think (backup.think_timeout)", t.phase, t.limit.Round(time.Second))
	case !t.present():
		return false, fmt.Sprintf("the iPhone sent nothing %s for %v and usbmuxd no longer lists it", t.phase, quiet.Round(time.Second))
	}
	return true, ""
}

// silenceError is a read that timed out and that the thinker judged a
// stall: why says what made it one.
type silenceError struct {
	why string
	err error
}

func (e *silenceError) Error() string { return e.why + ": " + e.err.Error() }
func (e *silenceError) Unwrap() error { return e.err }

// presence returns a probe that asks usbmuxd whether dev is still
// attached: the same device (UDID and usbmuxd's DeviceID, which a replug
// changes). An error asking counts as gone.
func (e *Engine) presence(ctx context.Context, dev usbmux.Device) func() bool {
	return func() bool {
		c, cancel := context.WithTimeout(ctx, e.opts.ServiceTimeout)
		defer cancel()
		list, err := e.mux.ListDevices(c)
		if err != nil {
			return false
		}
		for _, d := range list {
			if d.UDID == dev.UDID && d.DeviceID == dev.DeviceID {
				return true
			}
		}
		return false
	}
}

// await notes the phase in which the host now waits for the device's
// next message. Entering and leaving a slow phase is reported at once
// (Progress.Thinking), so that a watchdog above holds its no-progress
// timer for exactly as long as the phone may think.
func (s *session) await(p thinkPhase) {
	t := s.link.think
	if t == nil {
		return
	}
	t.expect(p, s.link.nread)
	if slow := p != busy; slow != s.quiet {
		s.quiet = slow
		s.report(true)
	}
}

// allowThinking lets the phone go quiet at the slow points of a backup
// or a restore for up to limit, while present says it is attached.
func (s *session) allowThinking(present func() bool, limit time.Duration) {
	s.link.think = &thinker{present: present, limit: limit, onThink: func(quiet time.Duration) {
		if t := s.link.think; !t.told {
			t.told = true
			s.log.Info("the iPhone is quiet but still connected; waiting for it", "phase", s.link.think.phase.String(), "quiet", quiet.Round(time.Second), "up_to", limit)
		}
		s.report(true)
	}}
}
