package backup

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/sim"
)

// thinkStall is the stall timeout of the liveness tests; the phone's
// silences are 2.5 times as long.
const thinkStall = 200 * time.Millisecond

func thinkOptions(t *testing.T) Options {
	opts := testOptions(t)
	opts.StallTimeout = thinkStall
	opts.FirstMessageTimeout = thinkStall
	return opts
}

// TestThinkingPhoneCommits (issue #13, item 1): a phone that stays silent
// 2.5 times the stall timeout at every point where real iPhones think
// (its passcode, before its first message, after it downloaded the
// host's manifest, before its first upload, before it uploads
// Manifest.db, after its end-of-backup re-download) is still attached
// and thinking: a full and an incremental backup both commit, and the
// progress says when the phone thinks, so the daemon's watchdog holds.
func TestThinkingPhoneCommits(t *testing.T) {
	pause := thinkStall * 5 / 2
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30}, ProductVersion: "17.5", Faults: sim.Faults{
		ThinkPause: pause, PasscodeDelay: pause, EndRedownload: true,
	}}, thinkOptions(t))
	var thinking, awake atomic.Int32
	prog := func(p Progress) {
		if p.Thinking {
			thinking.Add(1)
		} else {
			awake.Add(1)
		}
	}
	start := time.Now()
	res := r.mustBackup(Target{Progress: prog})
	if !res.Full {
		t.Error("the first backup is not full")
	}
	checkMatchesDevice(t, r.latest(), r.dev)
	if took := time.Since(start); took < 4*pause {
		t.Fatalf("the backup took %v: the phone did not pause (%v each)", took, pause)
	}
	if thinking.Load() == 0 || awake.Load() == 0 {
		t.Errorf("progress reports: %d thinking, %d not; want both", thinking.Load(), awake.Load())
	}

	r.dev.Mutate(0.2)
	res = r.mustBackup(Target{})
	if res.Full {
		t.Error("the second backup is full, so no manifest was downloaded and digested")
	}
	checkMatchesDevice(t, r.latest(), r.dev)
}

// TestDeadLinkStillStalls: the allowance is for a phone that is there.
// One that goes away mid-silence is disconnected at once; one still
// listed and silent past ThinkTimeout is stalled; a silence in the
// middle of a file is a stall as it always was.
func TestDeadLinkStillStalls(t *testing.T) {
	tests := []struct {
		name   string
		faults sim.Faults
		think  time.Duration
		unplug bool
		want   cause.Code
		within time.Duration
	}{
		{name: "unplugged while thinking", faults: sim.Faults{ThinkPause: time.Minute}, unplug: true, want: cause.Disconnected, within: 2 * time.Second},
		{name: "thinks past think_timeout", faults: sim.Faults{ThinkPause: time.Minute}, think: time.Second, want: cause.Stalled, within: 3 * time.Second},
		{name: "silent mid-file", faults: sim.Faults{StallAfterBytes: 40 << 10}, want: cause.Stalled, within: 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := thinkOptions(t)
			opts.ThinkTimeout = tc.think
			r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30, MaxSize: 128 << 10}, Faults: tc.faults}, opts)
			dev := r.device()
			if tc.unplug {
				go func() {
					time.Sleep(3 * thinkStall)
					r.dev.Unplug()
				}()
			}
			start := time.Now()
			res, err := r.eng.Run(testCtx(t), dev, Target{Repo: r.target})
			took := time.Since(start)
			if err == nil || res.Cause != tc.want {
				t.Fatalf("run: %v (cause %s), want %s", err, res.Cause, tc.want)
			}
			if took > tc.within {
				t.Errorf("took %v to end, want at most %v", took, tc.within)
			}
			t.Logf("ended in %v: %v", took, err)
		})
	}
}

// TestThinkerNeedsPresence: a silence in a slow phase goes on while
// usbmuxd lists the phone and is a stall within the stall timeout once
// it does not, though the socket stays open; a message that starts and
// stops is broken however slow the phase.
func TestThinkerNeedsPresence(t *testing.T) {
	t.Run("no longer listed", func(t *testing.T) {
		s, dev, _ := fakeSession(t, Options{StallTimeout: thinkStall, FirstMessageTimeout: thinkStall})
		var present atomic.Bool
		present.Store(true)
		s.allowThinking(present.Load, time.Minute)
		go dev.ReadProcessMessage() // the request; then silence
		gone := make(chan time.Time, 1)
		go func() {
			time.Sleep(5 * thinkStall)
			gone <- time.Now()
			present.Store(false)
		}()
		_, err := s.request(map[string]any{"MessageName": "Backup"})
		at := <-gone
		if cause.Of(err) != cause.Stalled || !strings.Contains(err.Error(), "no longer lists it") {
			t.Fatalf("request: %v, want stalled because usbmuxd no longer lists the phone", err)
		}
		if d := time.Since(at); d > 3*thinkStall {
			t.Errorf("stalled %v after the phone left the list, want within the stall timeout %v", d, thinkStall)
		}
	})
	t.Run("half a message", func(t *testing.T) {
		s, dev, _ := fakeSession(t, Options{StallTimeout: thinkStall, FirstMessageTimeout: thinkStall})
		s.allowThinking(func() bool { return true }, time.Minute)
		go func() {
			dev.ReadProcessMessage()
			dev.Writer().Write([]byte{0, 0, 3, 0, 'b', 'p', 'l'})
		}()
		start := time.Now()
		_, err := s.request(map[string]any{"MessageName": "Backup"})
		if cause.Of(err) != cause.ProtocolError || !errors.Is(err, devicelink.ErrProtocol) {
			t.Fatalf("request: %v, want a protocol error", err)
		}
		if d := time.Since(start); d > 3*thinkStall {
			t.Errorf("took %v", d)
		}
	})
}

// TestThinkingPhoneRestores (issue #13): real iPhones are silent for
// minutes in a restore too, before their first message, before their
// first file request and after the last file while they apply it. A
// phone silent 2.5 times the stall timeout at each of those points gets
// every file, and the progress says when it thinks.
func TestThinkingPhoneRestores(t *testing.T) {
	pause := thinkStall * 5 / 2
	r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 30}}, thinkOptions(t))
	r.mustBackup(Target{})
	r.dev.SetFaults(sim.Faults{ThinkPause: pause})
	pin, err := r.repo.Pin(r.dev.UDID(), "latest")
	if err != nil {
		t.Fatal(err)
	}
	defer pin.Release()
	var thinking, awake atomic.Int32
	start := time.Now()
	res, err := r.eng.Restore(testCtx(t), r.device(), RestoreTarget{
		Source: FromPin(r.repo, pin), Options: restoreOpts(),
		Progress: func(p Progress) {
			if p.Thinking {
				thinking.Add(1)
			} else {
				awake.Add(1)
			}
		},
	})
	if err != nil {
		t.Fatalf("restore: %v (%+v)", err, res)
	}
	requireIntact(t, r.dev, 30)
	if took := time.Since(start); took < 3*pause {
		t.Fatalf("the restore took %v: the phone did not pause (%v each)", took, pause)
	}
	if thinking.Load() == 0 || awake.Load() == 0 {
		t.Errorf("progress reports: %d thinking, %d not; want both", thinking.Load(), awake.Load())
	}
}

// TestRestoreDeadLinkStillStalls: in a restore as in a backup, a phone
// that goes away while silent is disconnected at once, one still listed
// and silent past ThinkTimeout is stalled.
func TestRestoreDeadLinkStillStalls(t *testing.T) {
	tests := []struct {
		name   string
		think  time.Duration
		unplug bool
		want   cause.Code
		within time.Duration
	}{
		{name: "unplugged while thinking", unplug: true, want: cause.Disconnected, within: 2 * time.Second},
		{name: "thinks past think_timeout", think: time.Second, want: cause.Stalled, within: 3 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := thinkOptions(t)
			opts.ThinkTimeout = tc.think
			r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 10}}, opts)
			r.mustBackup(Target{})
			r.dev.SetFaults(sim.Faults{ThinkPause: time.Minute})
			pin, err := r.repo.Pin(r.dev.UDID(), "latest")
			if err != nil {
				t.Fatal(err)
			}
			defer pin.Release()
			if tc.unplug {
				go func() {
					time.Sleep(3 * thinkStall)
					r.dev.Unplug()
				}()
			}
			start := time.Now()
			res, err := r.eng.Restore(testCtx(t), r.device(), RestoreTarget{Source: FromPin(r.repo, pin), Options: restoreOpts()})
			took := time.Since(start)
			if err == nil || res.Cause != tc.want {
				t.Fatalf("restore: %v (cause %s), want %s", err, res.Cause, tc.want)
			}
			if took > tc.within {
				t.Errorf("took %v to end, want at most %v", took, tc.within)
			}
			t.Logf("ended in %v: %v", took, err)
		})
	}
}

// TestRestorePhases: in a restore a silence is allowed before the first
// download, after the downloads of the manifest (no data file asked for
// yet) and after the last data file; between two batches of files, or
// after any other message once files flow, it is a stall.
func TestRestorePhases(t *testing.T) {
	tests := []struct {
		name       string
		msg        string
		downloaded bool
		asked      int
		want       thinkPhase
	}{
		{"before any download", devicelink.MsgGetFreeDiskSpace, false, 0, preparing},
		{"after the manifest", devicelink.MsgDownloadFiles, true, 0, restoring},
		{"between batches", devicelink.MsgDownloadFiles, true, 5, busy},
		{"after the last file", devicelink.MsgDownloadFiles, true, 10, restoring},
		{"other message once files flow", devicelink.MsgContentsOfDir, true, 5, busy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := &restoreFS{prefix: "src/", dataFiles: 10, asked: tc.asked}
			if got := restorePhaseAfter(tc.msg, tc.downloaded, src.slowAfterDownload()); got != tc.want {
				t.Errorf("phase %v, want %v", got, tc.want)
			}
		})
	}
	src := &restoreFS{prefix: "src/"}
	for _, p := range []string{"src/Status.plist", "src/Manifest.db", "/src/ab/abcdef", "src/zz/x", "other/ab/x"} {
		src.note(p)
	}
	if src.asked != 1 {
		t.Errorf("counted %d data files asked for, want 1", src.asked)
	}
}
