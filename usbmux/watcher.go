package usbmux

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"
)

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// Attached: a device appeared (Event.Device says which).
	Attached EventKind = iota + 1
	// Detached: a device went away. usbmuxd's Detached names only the
	// DeviceID; the watcher fills in the rest from what Attached said.
	Detached
	// MuxDown: the connection to usbmuxd failed or was lost (Event.Err,
	// cause usbmuxd_unavailable, or protocol_error when usbmuxd said
	// something we could not read). Sent once per outage.
	MuxDown
	// MuxUp: the watcher is connected and listening.
	MuxUp
	// Paired: usbmuxd saved a pair record for an attached device. Someone
	// finished pairing it: we, another tool, or, on Linux, usbmuxd
	// itself, whose preflight raises the Trust prompt on every plug-in of
	// an unpaired phone and pairs once the user taps Trust. A device
	// waiting in trust_pending is worth checking again now.
	Paired
)

func (k EventKind) String() string {
	switch k {
	case Attached:
		return "attached"
	case Detached:
		return "detached"
	case MuxDown:
		return "usbmuxd down"
	case MuxUp:
		return "usbmuxd up"
	case Paired:
		return "paired"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change the watcher saw.
type Event struct {
	Kind EventKind
	// Device is the device attached, detached or paired; zero for
	// MuxUp and MuxDown.
	Device Device
	// Reconciled marks Attached and Detached events that the watcher
	// derived from usbmuxd's device list on (re)connecting, not from a
	// notification: the change happened while the watcher could not see
	// it, at an unknown time. A device that was there before an outage and
	// is still there with a new DeviceID (usbmuxd restarted) gets a
	// Reconciled Detached and Attached pair; a stability tracker should not
	// count that as a flapping cable.
	Reconciled bool
	// Err is why usbmuxd is unavailable (MuxDown only).
	Err error
	// At is when the watcher saw the change, from its clock.
	At time.Time
}

// Backoff is the reconnect schedule: Initial after the first failure,
// doubling up to Max.
type Backoff struct {
	Initial time.Duration // default 100 ms
	Max     time.Duration // default 2 s
}

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Client is the usbmuxd client to watch through.
	Client *Client
	// Backoff is the reconnect schedule while usbmuxd is unavailable.
	Backoff Backoff
	// Buffer is the capacity of the events channel. Default 64. When it
	// is full, the watcher waits, and usbmuxd buffers for it.
	Buffer int
	// Now and Sleep are the clock, for tests; nil means the real one.
	// Sleep returns early with ctx's error when ctx ends.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives one line per connection change; nil discards them.
	Logger *slog.Logger
}

// Watcher follows usbmuxd's device notifications. While connected it only
// blocks on the Listen connection, never polls; when usbmuxd goes away it
// reconnects with backoff and, once back, reconciles its device list.
type Watcher struct {
	c      *Client
	cfg    WatcherConfig
	log    *slog.Logger
	events chan Event

	mu      sync.Mutex
	devices map[uint32]Device // DeviceID → device, as usbmuxd last told
	down    error             // why usbmuxd is unavailable; nil while connected
	started bool
}

// NewWatcher returns a watcher; Run starts it.
func NewWatcher(cfg WatcherConfig) *Watcher {
	if cfg.Client == nil {
		cfg.Client = NewClient(Config{})
	}
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff.Initial = 100 * time.Millisecond
	}
	if cfg.Backoff.Max < cfg.Backoff.Initial {
		cfg.Backoff.Max = max(2*time.Second, cfg.Backoff.Initial)
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		c:       cfg.Client,
		cfg:     cfg,
		log:     log,
		events:  make(chan Event, cfg.Buffer),
		devices: map[uint32]Device{},
		down:    errors.New("usbmuxd: not connected yet"),
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Events returns the channel of events. Run closes it when it returns.
func (w *Watcher) Events() <-chan Event { return w.events }

// Devices returns the devices attached as far as the watcher knows,
// ordered by DeviceID. During an outage it is the list from before it.
func (w *Watcher) Devices() []Device {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Device, 0, len(w.devices))
	for _, d := range w.devices {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Device) int { return cmp.Compare(a.DeviceID, b.DeviceID) })
	return out
}

// Err returns why usbmuxd is unavailable, or nil while the watcher is
// connected. Its cause is usbmuxd_unavailable (or protocol_error).
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.down
}

// Run watches until ctx ends, then closes the events channel and returns
// ctx's error. It may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return errors.New("usbmux watcher: Run called twice")
	}
	w.started = true
	w.mu.Unlock()
	defer close(w.events)

	backoff := w.cfg.Backoff.Initial
	announcedDown := false
	for {
		err := w.session(ctx, func() {
			backoff = w.cfg.Backoff.Initial
			announcedDown = false
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.mu.Lock()
		w.down = err
		w.mu.Unlock()
		if !announcedDown {
			w.log.Warn("usbmuxd unavailable", "addr", w.c.cfg.Addr.String(), "err", err)
			if serr := w.emit(ctx, Event{Kind: MuxDown, Err: err}); serr != nil {
				return serr
			}
			announcedDown = true
		} else {
			w.log.Debug("usbmuxd still unavailable", "err", err, "retry_in", backoff)
		}
		if serr := w.cfg.Sleep(ctx, backoff); serr != nil {
			return serr
		}
		backoff = min(2*backoff, w.cfg.Backoff.Max)
	}
}

func (w *Watcher) emit(ctx context.Context, ev Event) error {
	ev.At = w.cfg.Now()
	select {
	case w.events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// session runs one connection to usbmuxd: Listen, reconcile with the
// device list, then follow notifications until the connection fails. It
// always returns an error; up is called once listening works.
//
// go-ios sends Listen and reads the notifications (goiosMux.listen and
// notification); the list is ours (ListDevices), and so is every check
// of what the notifications say (applyNotification).
func (w *Watcher) session(ctx context.Context, up func()) error {
	x, err := w.c.dialGoIOS(ctx)
	if err != nil {
		return err
	}
	defer x.Close()
	// Listen first, then list: every change after the list was taken
	// arrives as a notification, so nothing falls between the two. The
	// notifications usbmuxd sends on Listen for devices already there are
	// deduplicated against the list.
	if err := x.listen(ctx); err != nil {
		return err
	}
	list, err := w.c.ListDevices(ctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.down = nil
	w.mu.Unlock()
	up()
	w.log.Info("usbmuxd connected", "addr", w.c.cfg.Addr.String(), "devices", len(list))
	if err := w.emit(ctx, Event{Kind: MuxUp}); err != nil {
		return err
	}
	for _, ev := range w.reconcile(list) {
		if err := w.emit(ctx, ev); err != nil {
			return err
		}
	}

	// From here the connection only carries notifications. No deadline:
	// an idle usbmuxd is silent for days; cancellation closes the socket.
	stop := context.AfterFunc(ctx, func() { x.Close() })
	defer stop()
	for {
		msg, err := x.notification(ctx)
		if err != nil {
			return err
		}
		evs, err := w.apply(msg)
		var odd *OddEntry
		if errors.As(err, &odd) {
			// Not a phone: usbmuxd is not out of step, and the phones
			// beside it must stay in view.
			w.c.noteOdd(ctx, odd)
			continue
		}
		if err != nil {
			// Out of step with usbmuxd: reconnecting rebuilds the list
			// from scratch, which is safer than guessing.
			return err
		}
		for _, ev := range evs {
			if err := w.emit(ctx, ev); err != nil {
				return err
			}
		}
	}
}

// apply updates the device map from one notification and returns the
// events it makes.
func (w *Watcher) apply(msg muxMessage) ([]Event, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return applyNotification(w.devices, msg)
}

// applyNotification is apply on a plain map, for tests and fuzzing. An
// Attached of an odd entry is an *OddEntry error and changes nothing.
func applyNotification(devices map[uint32]Device, msg muxMessage) ([]Event, error) {
	switch msg.MessageType {
	case "Attached":
		d, err := deviceFromMessage(msg)
		if err != nil {
			return nil, err
		}
		old, known := devices[d.DeviceID]
		if known && old.UDID == d.UDID {
			// usbmuxd repeats every device on Listen; the list had it.
			devices[d.DeviceID] = d
			return nil, nil
		}
		var evs []Event
		if known {
			delete(devices, old.DeviceID)
			evs = append(evs, Event{Kind: Detached, Device: old})
		}
		devices[d.DeviceID] = d
		return append(evs, Event{Kind: Attached, Device: d}), nil
	case "Detached":
		if msg.DeviceID == 0 || msg.DeviceID > math.MaxUint32 {
			return nil, protocolError("usbmuxd Detached: DeviceID %d out of range", msg.DeviceID)
		}
		d, known := devices[uint32(msg.DeviceID)]
		if !known {
			// One we never saw attached, as when it came and went
			// between Listen and ListDevices; nothing to report.
			return nil, nil
		}
		delete(devices, d.DeviceID)
		return []Event{{Kind: Detached, Device: d}}, nil
	case "Paired":
		if msg.DeviceID <= math.MaxUint32 {
			if d, known := devices[uint32(msg.DeviceID)]; known {
				return []Event{{Kind: Paired, Device: d}}, nil
			}
		}
		// usbmuxd names a device only when it is attached; one we do not
		// know is no news.
		return nil, nil
	default:
		// Whatever later usbmuxd versions add: not ours.
		return nil, nil
	}
}

// reconcile makes the device map match usbmuxd's list and returns the
// events that takes: Detached for every device gone or renumbered, then
// Attached for every new one, each in DeviceID order.
func (w *Watcher) reconcile(list []Device) []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return reconcileDevices(w.devices, list)
}

func reconcileDevices(devices map[uint32]Device, list []Device) []Event {
	now := make(map[uint32]Device, len(list))
	for _, d := range list {
		now[d.DeviceID] = d
	}
	var gone, added []Device
	for id, d := range devices {
		if n, ok := now[id]; !ok || n.UDID != d.UDID {
			gone = append(gone, d)
			delete(devices, id)
		}
	}
	for id, d := range now {
		if _, ok := devices[id]; !ok {
			added = append(added, d)
		}
		devices[id] = d
	}
	byID := func(a, b Device) int { return cmp.Compare(a.DeviceID, b.DeviceID) }
	slices.SortFunc(gone, byID)
	slices.SortFunc(added, byID)
	evs := make([]Event, 0, len(gone)+len(added))
	for _, d := range gone {
		evs = append(evs, Event{Kind: Detached, Device: d, Reconciled: true})
	}
	for _, d := range added {
		evs = append(evs, Event{Kind: Attached, Device: d, Reconciled: true})
	}
	return evs
}
