package usbmux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// runWatcher starts w and stops it with the test.
func runWatcher(t testing.TB, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
}

// next returns the next event, failing after a while.
func next(t testing.TB, w *Watcher) Event {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatal("events channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return Event{}
}

// expect checks the next event's kind, UDID and Reconciled flag.
func expect(t testing.TB, w *Watcher, kind EventKind, udid string, reconciled bool) Event {
	t.Helper()
	ev := next(t, w)
	if ev.Kind != kind || ev.Device.UDID != udid || ev.Reconciled != reconciled {
		t.Fatalf("event %v %q reconciled=%v (%+v), want %v %q reconciled=%v", ev.Kind, ev.Device.UDID, ev.Reconciled, ev, kind, udid, reconciled)
	}
	if ev.At.IsZero() {
		t.Fatal("event without a time")
	}
	return ev
}

func expectNone(t *testing.T, w *Watcher, d time.Duration) {
	t.Helper()
	select {
	case ev := <-w.Events():
		t.Fatalf("unexpected event %v %+v", ev.Kind, ev)
	case <-time.After(d):
	}
}

func TestWatcherFollowsSim(t *testing.T) {
	s, devs := simtest.StartT(t,
		sim.DeviceConfig{Speed: 5_000_000_000},
		sim.DeviceConfig{ConnType: sim.Network},
	)
	c := simClient(t, s)
	w := NewWatcher(WatcherConfig{Client: c})
	runWatcher(t, w)

	if ev := next(t, w); ev.Kind != MuxUp || ev.Err != nil {
		t.Fatalf("first event %+v, want MuxUp", ev)
	}
	a := expect(t, w, Attached, devs[0].UDID(), true)
	if a.Device.ConnType != ConnUSB || a.Device.Speed != 5_000_000_000 || a.Device.DeviceID == 0 {
		t.Fatalf("attached %+v", a.Device)
	}
	b := expect(t, w, Attached, devs[1].UDID(), true)
	if b.Device.ConnType != ConnNetwork {
		t.Fatalf("attached %+v", b.Device)
	}
	// usbmuxd repeats both on Listen: no duplicates.
	expectNone(t, w, 100*time.Millisecond)
	if w.Err() != nil {
		t.Fatalf("Err while connected: %v", w.Err())
	}

	devs[0].Unplug()
	d := expect(t, w, Detached, devs[0].UDID(), false)
	if d.Device != a.Device {
		t.Fatalf("detached %+v, attached as %+v", d.Device, a.Device)
	}
	devs[0].Plug()
	again := expect(t, w, Attached, devs[0].UDID(), false)
	if again.Device.DeviceID == a.Device.DeviceID {
		t.Fatal("a re-plugged device kept its DeviceID")
	}
	if got := w.Devices(); len(got) != 2 || got[0].UDID != devs[1].UDID() || got[1] != again.Device {
		t.Fatalf("Devices() = %+v", got)
	}

	// Pairing makes usbmuxd push Paired: one Paired event, no attach.
	extra, err := s.AddDevice(sim.DeviceConfig{Pairing: sim.Unpaired})
	if err != nil {
		t.Fatal(err)
	}
	extra.Plug()
	e := expect(t, w, Attached, extra.UDID(), false)
	if v, _ := c.CheckTrust(testCtx(t), e.Device, TrustOptions{StartPairing: true}); v != TrustPending {
		t.Fatalf("pairing: %v", v)
	}
	extra.TapTrust()
	if v, err := c.CheckTrust(testCtx(t), e.Device, TrustOptions{StartPairing: true}); v != Trusted {
		t.Fatalf("pairing: %v %v", v, err)
	}
	if p := expect(t, w, Paired, extra.UDID(), false); p.Device != e.Device {
		t.Fatalf("paired %+v, attached as %+v", p.Device, e.Device)
	}
	expectNone(t, w, 100*time.Millisecond)
}

// TestWatcherSurvivesUsbmuxdRestart stops the simulated usbmuxd and
// starts another on the same socket with a different set of devices, as
// happens when usbmuxd restarts and renumbers everything.
func TestWatcherSurvivesUsbmuxdRestart(t *testing.T) {
	dir, err := os.MkdirTemp("", "umx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "mux.sock")
	startSim := func(cfgs ...sim.DeviceConfig) *sim.Sim {
		// Devices first, so the watcher finds them all in the list.
		s := sim.New(sim.Options{Socket: sock})
		for _, cfg := range cfgs {
			d, err := s.AddDevice(cfg)
			if err != nil {
				t.Fatal(err)
			}
			d.Plug()
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	const stay, leave, arrive = "00000000-STAY", "00000000-LEAVE", "00000000-ARRIVE"
	s1 := startSim(sim.DeviceConfig{UDID: leave}, sim.DeviceConfig{UDID: stay})
	w := NewWatcher(WatcherConfig{
		Client:  NewClient(Config{Addr: Addr{Network: "unix", Address: sock}, Timeout: 2 * time.Second}),
		Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	runWatcher(t, w)
	if ev := next(t, w); ev.Kind != MuxUp {
		t.Fatalf("%+v", ev)
	}
	expect(t, w, Attached, leave, true)
	oldStay := expect(t, w, Attached, stay, true)

	s1.Close()
	down := next(t, w)
	if down.Kind != MuxDown {
		t.Fatalf("after usbmuxd stopped: %+v", down)
	}
	wantCause(t, down.Err, cause.UsbmuxdUnavailable)
	// Retries fail for a while: still one MuxDown, and Err says why.
	time.Sleep(200 * time.Millisecond)
	wantCause(t, w.Err(), cause.UsbmuxdUnavailable)
	if len(w.Devices()) != 2 {
		t.Fatalf("devices forgotten during the outage: %+v", w.Devices())
	}

	startSim(sim.DeviceConfig{UDID: stay}, sim.DeviceConfig{UDID: arrive})
	if ev := next(t, w); ev.Kind != MuxUp {
		t.Fatalf("after restart: %+v", ev)
	}
	// The new usbmuxd numbers stay 1 and arrive 2: leave (1) and stay (2)
	// are gone under their old numbers.
	expect(t, w, Detached, leave, true)
	if ev := expect(t, w, Detached, stay, true); ev.Device != oldStay.Device {
		t.Fatalf("detached %+v, was %+v", ev.Device, oldStay.Device)
	}
	expect(t, w, Attached, stay, true)
	expect(t, w, Attached, arrive, true)
	expectNone(t, w, 100*time.Millisecond)
	if w.Err() != nil {
		t.Fatalf("Err after reconnect: %v", w.Err())
	}
}

func TestWatcherBackoff(t *testing.T) {
	var mu sync.Mutex
	var slept []time.Duration
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := NewWatcher(WatcherConfig{
		Client: NewClient(Config{Addr: Addr{Network: "unix", Address: shortSocketPath(t)}}),
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			slept = append(slept, d)
			if len(slept) == 8 {
				cancel()
			}
			return ctx.Err()
		},
	})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var events []Event
	for ev := range w.Events() {
		events = append(events, ev)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	ms := time.Millisecond
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms, 2000 * ms}
	if !reflect.DeepEqual(slept, want) {
		t.Fatalf("backoff %v, want %v", slept, want)
	}
	if len(events) != 1 || events[0].Kind != MuxDown {
		t.Fatalf("events %+v, want one MuxDown", events)
	}
	wantCause(t, events[0].Err, cause.UsbmuxdUnavailable)
}

// TestWatcherIdleDoesNotPoll counts connections to a scripted usbmuxd: one
// to listen and one to list, however long nothing happens.
func TestWatcherIdleDoesNotPoll(t *testing.T) {
	f := startFakeMux(t, func(_ int, c net.Conn) {
		tag, typ, err := readReq(c)
		if err != nil {
			return
		}
		switch typ {
		case "Listen":
			_ = sendMux(c, tag, map[string]any{"MessageType": "Result", "Number": 0})
			_, _ = c.Read(make([]byte, 1)) // silent until the client leaves
		case "ListDevices":
			_ = sendMux(c, tag, map[string]any{"DeviceList": []any{}})
		}
	})
	w := NewWatcher(WatcherConfig{Client: NewClient(Config{Addr: f.addr})})
	runWatcher(t, w)
	if ev := next(t, w); ev.Kind != MuxUp {
		t.Fatalf("%+v", ev)
	}
	expectNone(t, w, 500*time.Millisecond)
	if n := f.conns.Load(); n != 2 {
		t.Fatalf("%d connections to usbmuxd while idle, want 2", n)
	}
}

// TestWatcherBadNotifications pushes odd notifications: the unreadable
// ones end the connection with protocol_error and the watcher reconnects
// and reconciles; the harmless ones are ignored.
func TestWatcherBadNotifications(t *testing.T) {
	bad := []struct {
		name string
		push func(c net.Conn) error
		down bool // the watcher must drop the connection
	}{
		{"garbage plist", func(c net.Conn) error { return sendRaw(c, 1, 8, "<plist><dict><key>") }, true},
		{"Attached without Properties", func(c net.Conn) error {
			return sendMux(c, 0, map[string]any{"MessageType": "Attached", "DeviceID": 9})
		}, true},
		// Not a phone (issue #13): skipped, the others kept in view.
		{"Attached with a bad UDID", func(c net.Conn) error { return sendMux(c, 0, attachedMsg(9, "a/b", "USB", 0)) }, false},
		{"Detached of DeviceID 0", func(c net.Conn) error {
			return sendMux(c, 0, map[string]any{"MessageType": "Detached", "DeviceID": 0})
		}, true},
		{"binary packet", func(c net.Conn) error { return sendRaw(c, 0, 3, "1234") }, true},
		{"unknown message", func(c net.Conn) error {
			return sendMux(c, 0, map[string]any{"MessageType": "SomethingNew", "DeviceID": 1})
		}, false},
		{"Detached of an unknown device", func(c net.Conn) error {
			return sendMux(c, 0, map[string]any{"MessageType": "Detached", "DeviceID": 77})
		}, false},
		{"Paired of an unknown device", func(c net.Conn) error {
			return sendMux(c, 0, map[string]any{"MessageType": "Paired", "DeviceID": 5})
		}, false},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			listens := 0
			f := startFakeMux(t, func(_ int, c net.Conn) {
				tag, typ, err := readReq(c)
				if err != nil {
					return
				}
				switch typ {
				case "Listen":
					mu.Lock()
					listens++
					first := listens == 1
					mu.Unlock()
					_ = sendMux(c, tag, map[string]any{"MessageType": "Result", "Number": 0})
					_ = sendMux(c, 0, attachedMsg(1, "GOOD", "USB", 480000000))
					if first {
						_ = tt.push(c)
						_ = sendMux(c, 0, attachedMsg(2, "AFTER", "USB", 480000000))
					}
					_, _ = c.Read(make([]byte, 1))
				case "ListDevices":
					_ = sendMux(c, tag, map[string]any{"DeviceList": []any{attachedMsg(1, "GOOD", "USB", 480000000)}})
				}
			})
			w := NewWatcher(WatcherConfig{
				Client:  NewClient(Config{Addr: f.addr}),
				Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 10 * time.Millisecond},
			})
			runWatcher(t, w)
			if ev := next(t, w); ev.Kind != MuxUp {
				t.Fatalf("%+v", ev)
			}
			expect(t, w, Attached, "GOOD", true)
			if tt.down {
				ev := next(t, w)
				if ev.Kind != MuxDown {
					t.Fatalf("after %s: %+v, want MuxDown", tt.name, ev)
				}
				wantCause(t, ev.Err, cause.ProtocolError)
				if ev := next(t, w); ev.Kind != MuxUp {
					t.Fatalf("no reconnect: %+v", ev)
				}
				// GOOD is still there under the same number: nothing to say.
				expectNone(t, w, 100*time.Millisecond)
			} else {
				expect(t, w, Attached, "AFTER", false)
			}
		})
	}
}

func sendRaw(c net.Conn, version, msg uint32, body string) error {
	return wire.WriteMuxPacket(c, version, msg, 0, []byte(body))
}

func TestReconcileDevices(t *testing.T) {
	dev := func(id uint32, udid string) Device { return Device{UDID: udid, DeviceID: id, ConnType: ConnUSB} }
	tests := []struct {
		name    string
		known   []Device
		list    []Device
		want    []string // "+udid/id" attached, "-udid/id" detached
		wantMap []Device
	}{
		{"empty", nil, nil, nil, nil},
		{"first list", nil, []Device{dev(2, "B"), dev(1, "A")}, []string{"+A/1", "+B/2"}, []Device{dev(1, "A"), dev(2, "B")}},
		{"unchanged", []Device{dev(1, "A")}, []Device{dev(1, "A")}, nil, []Device{dev(1, "A")}},
		{"vanished", []Device{dev(1, "A"), dev(2, "B")}, []Device{dev(2, "B")}, []string{"-A/1"}, []Device{dev(2, "B")}},
		{"renumbered", []Device{dev(1, "A")}, []Device{dev(3, "A")}, []string{"-A/1", "+A/3"}, []Device{dev(3, "A")}},
		{"number reused", []Device{dev(1, "A")}, []Device{dev(1, "B")}, []string{"-A/1", "+B/1"}, []Device{dev(1, "B")}},
	}
	for _, tt := range tests {
		m := map[uint32]Device{}
		for _, d := range tt.known {
			m[d.DeviceID] = d
		}
		var got []string
		for _, ev := range reconcileDevices(m, tt.list) {
			sign := "+"
			if ev.Kind == Detached {
				sign = "-"
			}
			if !ev.Reconciled {
				t.Errorf("%s: event not marked Reconciled", tt.name)
			}
			got = append(got, fmt.Sprintf("%s%s/%d", sign, ev.Device.UDID, ev.Device.DeviceID))
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: events %v, want %v", tt.name, got, tt.want)
		}
		wantMap := map[uint32]Device{}
		for _, d := range tt.wantMap {
			wantMap[d.DeviceID] = d
		}
		if !reflect.DeepEqual(m, wantMap) {
			t.Errorf("%s: map %v, want %v", tt.name, m, wantMap)
		}
	}
}
