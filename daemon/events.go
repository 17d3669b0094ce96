package daemon

import (
	"sync"
	"time"

	"github.com/backupd/backupd/daemon/api"
)

// bus fans events out to the live stream's subscribers. Publishing never
// blocks: a backup must not wait for a slow reader. A subscriber that
// falls a whole buffer behind is dropped (its channel closed), so the
// client notices, reconnects and reads the current state afresh, rather
// than silently missing a state change.
type bus struct {
	now func() time.Time

	mu     sync.Mutex
	seq    uint64
	subs   map[*subscription]struct{}
	closed bool // after closeAll, a new subscription ends at once
}

// subscription is one reader of the bus.
type subscription struct {
	ch chan api.Event
}

// subscriberBuffer holds a few seconds of progress events of several
// backups at once.
const subscriberBuffer = 256

func newBus(now func() time.Time) *bus {
	return &bus{now: now, subs: map[*subscription]struct{}{}}
}

// publish numbers ev, stamps it and hands it to every subscriber.
func (b *bus) publish(ev api.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ev.Seq = b.seq
	if ev.Time.IsZero() {
		ev.Time = b.now()
	}
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default:
			delete(b.subs, s)
			close(s.ch)
		}
	}
}

// subscribe returns a channel of the events published from now on and a
// function that ends the subscription. The channel is closed when the
// subscription ends, by cancel or by falling behind.
func (b *bus) subscribe() (<-chan api.Event, func()) {
	s := &subscription{ch: make(chan api.Event, subscriberBuffer)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		close(s.ch)
		return s.ch, func() {}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s.ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[s]; ok {
			delete(b.subs, s)
			close(s.ch)
		}
	}
}

// closeAll ends every subscription, at shutdown.
func (b *bus) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		close(s.ch)
	}
}
