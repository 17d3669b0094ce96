package backup

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim"
)

// passcodeLog collects what Target.AwaitingPasscode was told.
type passcodeLog struct {
	mu  sync.Mutex
	got []bool
	// onTrue runs at the first true.
	onTrue func()
}

func (l *passcodeLog) report(v bool) {
	l.mu.Lock()
	l.got = append(l.got, v)
	first := v && len(l.got) == 1
	l.mu.Unlock()
	if first && l.onTrue != nil {
		go l.onTrue()
	}
}

func (l *passcodeLog) calls() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.got)
}

// TestAwaitingPasscode: the engine tells its caller when the iPhone shows
// its passcode prompt and when it stops, from the device's
// LocalAuthentication notifications or, on a silent iOS 16.1+ device,
// from the silence after the Backup request.
func TestAwaitingPasscode(t *testing.T) {
	tests := []struct {
		name    string
		version string
		faults  sim.Faults
		guess   time.Duration
		enter   bool // enter the passcode (ctl unlock) once reported
		want    []bool
		cause   cause.Code
	}{
		{name: "entered", version: "17.5", faults: sim.Faults{PasscodeNeverEntered: true, PasscodeDelay: time.Minute}, guess: time.Hour, enter: true, want: []bool{true, false}},
		{name: "never entered", version: "17.5", faults: sim.Faults{PasscodeNeverEntered: true, PasscodeDelay: 300 * time.Millisecond}, guess: time.Hour, want: []bool{true, false}, cause: cause.PasscodeNotEntered},
		{name: "silent 16.1 guessed", version: "16.1", faults: sim.Faults{FirstMessageDelay: 2 * time.Second}, guess: 200 * time.Millisecond, want: []bool{true, false}},
		{name: "silent 16.0 not guessed", version: "16.0.3", faults: sim.Faults{FirstMessageDelay: time.Second}, guess: 200 * time.Millisecond, want: nil},
		{name: "prompt-free device", version: "17.5", guess: time.Hour, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := testOptions(t)
			opts.PasscodeGuess = tt.guess
			r := newRig(t, sim.DeviceConfig{ProductVersion: tt.version, Files: sim.FileSpec{Count: 10, MaxSize: 4 << 10}}, opts)
			r.dev.SetFaults(tt.faults)
			log := &passcodeLog{}
			if tt.enter {
				log.onTrue = r.dev.Unlock
			}
			_, err := r.run(Target{AwaitingPasscode: log.report})
			if got := cause.Of(err); got != tt.cause && !(tt.cause == cause.None && err == nil) {
				t.Fatalf("backup: %v, want cause %q", err, tt.cause)
			}
			if got := log.calls(); !slices.Equal(got, tt.want) {
				t.Fatalf("AwaitingPasscode calls %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAsksPasscode(t *testing.T) {
	for v, want := range map[string]bool{
		"16.1": true, "16.1.2": true, "17": true, "18.0": true, "26.1": true,
		"16.0": false, "16": false, "15.8.3": false, "": false, "x.y": false, "16.x": false,
	} {
		if got := asksPasscode(v); got != want {
			t.Errorf("asksPasscode(%q) = %t, want %t", v, got, want)
		}
	}
}

// TestCallerCancelsWithACause: a caller that cancels with a cause (the
// phone was unplugged, the backup stalled) gets that cause, not
// interrupted, which is for a caller that stops without saying why.
func TestCallerCancelsWithACause(t *testing.T) {
	tests := []struct {
		name string
		why  error
		want cause.Code
	}{
		{"unplugged", cause.New(cause.Disconnected, errors.New("unplugged")), cause.Disconnected},
		{"stalled", cause.New(cause.Stalled, errors.New("no progress")), cause.Stalled},
		{"stopping", errors.New("backupd is stopping"), cause.Interrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, sim.DeviceConfig{Files: sim.FileSpec{Count: 60}}, testOptions(t))
			r.dev.SetFaults(sim.Faults{SlowLinkBytesPerSec: 256 << 10})
			ctx, cancel := context.WithCancelCause(testCtx(t))
			defer cancel(nil)
			var once sync.Once
			res, err := r.eng.Run(ctx, r.device(), Target{Repo: r.target, Progress: func(p Progress) {
				if p.Files >= 3 {
					once.Do(func() { cancel(tt.why) })
				}
			}})
			if err == nil || res.Cause != tt.want || cause.Of(err) != tt.want {
				t.Fatalf("run: %v, cause %s; want %s", err, res.Cause, tt.want)
			}
		})
	}
}
