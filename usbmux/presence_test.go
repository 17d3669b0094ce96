package usbmux

import (
	"context"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// startPresence follows a simulator with a short settle time. These tests
// run on the real clock: they check the wiring between the watcher and
// the tracker, whose timing logic has its own fake-clock tests.
func startPresence(t *testing.T, s *sim.Sim, cfg StabilityConfig) <-chan PresenceEvent {
	t.Helper()
	addr, err := ParseAddr(s.Address())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewStabilityTracker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(WatcherConfig{Client: NewClient(Config{Addr: addr})})
	p := NewPresence(w, tr, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p.Events()
}

// collect gathers device transitions for d.
func collect(evs <-chan PresenceEvent, d time.Duration) []PresenceEvent {
	var out []PresenceEvent
	deadline := time.After(d)
	for {
		select {
		case ev := <-evs:
			if ev.Kind != 0 {
				out = append(out, ev)
			}
		case <-deadline:
			return out
		}
	}
}

func kinds(evs []PresenceEvent) []TransitionKind {
	var k []TransitionKind
	for _, e := range evs {
		k = append(k, e.Kind)
	}
	return k
}

func TestPresenceAgainstSimulator(t *testing.T) {
	cfg := StabilityConfig{Settle: 300 * time.Millisecond, FlapCount: 3, FlapWindow: 10 * time.Second, QuietPeriod: time.Minute}

	t.Run("settles, then leaves", func(t *testing.T) {
		s, devs := simtest.StartT(t, sim.DeviceConfig{})
		evs := startPresence(t, s, cfg)
		got := collect(evs, time.Second)
		if len(got) != 1 || got[0].Kind != TransitionPresent || got[0].Device.UDID != devs[0].UDID() {
			t.Fatalf("want one present for %s, got %v", devs[0].UDID(), kinds(got))
		}
		devs[0].Unplug()
		if got := collect(evs, 300*time.Millisecond); len(got) != 1 || got[0].Kind != TransitionAbsent {
			t.Fatalf("after unplug: %v", kinds(got))
		}
	})

	t.Run("unplugged during settle never present", func(t *testing.T) {
		s, devs := simtest.StartT(t, sim.DeviceConfig{})
		devs[0].Unplug()
		// A long settle, so a slow machine cannot let it run out before
		// the unplug.
		long := cfg
		long.Settle = 2 * time.Second
		evs := startPresence(t, s, long)
		devs[0].Plug()
		time.Sleep(100 * time.Millisecond)
		devs[0].Unplug()
		if got := collect(evs, 2500*time.Millisecond); len(got) != 0 {
			t.Fatalf("a device unplugged while settling reported %v", kinds(got))
		}
	})

	t.Run("flapping cable is cable_unstable", func(t *testing.T) {
		s, devs := simtest.StartT(t, sim.DeviceConfig{})
		evs := startPresence(t, s, cfg)
		if got := collect(evs, 600*time.Millisecond); len(got) != 1 || got[0].Kind != TransitionPresent {
			t.Fatalf("before flapping: %v", kinds(got))
		}
		devs[0].Flap(3, 60*time.Millisecond)
		got := collect(evs, time.Second)
		var unstable *PresenceEvent
		for i := range got {
			if got[i].Kind == TransitionUnstable {
				unstable = &got[i]
			}
			// Once the cable stops flapping the phone is present, but still
			// unstable: not ready for a backup until the quiet period ends.
			if got[i].Kind == TransitionPresent && (got[i].Status.Ready() || got[i].Status.Cause() != cause.CableUnstable) {
				t.Errorf("a flapping device became ready: %v (status %+v)", kinds(got), got[i].Status)
			}
		}
		if unstable == nil {
			t.Fatalf("no unstable transition: %v", kinds(got))
		}
		if unstable.Status.Cause() != cause.CableUnstable || unstable.Device.UDID != devs[0].UDID() {
			t.Fatalf("unstable event: cause %s, device %s", unstable.Status.Cause(), unstable.Device.UDID)
		}
	})

	t.Run("wi-fi device is present at once", func(t *testing.T) {
		s, _ := simtest.StartT(t, sim.DeviceConfig{ConnType: sim.Network})
		evs := startPresence(t, s, StabilityConfig{Settle: time.Hour})
		if got := collect(evs, 300*time.Millisecond); len(got) != 1 || got[0].Kind != TransitionPresent {
			t.Fatalf("network device: %v", kinds(got))
		}
	})
}
