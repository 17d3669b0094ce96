package syncsvc

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/backupd/backupd/proto/notification"
	"github.com/backupd/backupd/proto/wire"
)

// relayQueue is how many device notifications may wait for one slow
// connection before Relay stops queueing to it.
const relayQueue = 32

// NotificationCenter is one device's notification center: it records
// what hosts post and lets the device push notifications to the
// connections that observe them. One per device, shared by all its
// notification_proxy connections; safe for concurrent use.
type NotificationCenter struct {
	mu       sync.Mutex
	posted   []string
	sessions map[*npSession]struct{}
	// changed is closed and replaced whenever something is posted or
	// observed, waking the Wait methods.
	changed chan struct{}
}

type npSession struct {
	relay    chan string
	observes map[string]bool // guarded by NotificationCenter.mu
}

// NewNotificationCenter returns an empty notification center.
func NewNotificationCenter() *NotificationCenter {
	return &NotificationCenter{sessions: map[*npSession]struct{}{}, changed: make(chan struct{})}
}

// Posted returns the names hosts posted, in order.
func (c *NotificationCenter) Posted() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.posted)
}

// Observed returns, sorted, the names that connections still open observe.
func (c *NotificationCenter) Observed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	for s := range c.sessions {
		for n := range s.observes {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names
}

// Relay pushes a device notification to every open connection observing
// name and returns how many it was queued to. A connection that has not
// drained relayQueue earlier notifications misses this one, as a real
// device does not wait for a host that stopped reading.
func (c *NotificationCenter) Relay(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for s := range c.sessions {
		if !s.observes[name] {
			continue
		}
		select {
		case s.relay <- name:
			n++
		default:
		}
	}
	return n
}

// WaitPosted blocks until some host has posted name, or ctx ends.
func (c *NotificationCenter) WaitPosted(ctx context.Context, name string) error {
	return c.wait(ctx, func() bool { return slices.Contains(c.posted, name) })
}

// WaitObserved blocks until an open connection observes name, or ctx
// ends. Relaying before that would reach nobody.
func (c *NotificationCenter) WaitObserved(ctx context.Context, name string) error {
	return c.wait(ctx, func() bool {
		for s := range c.sessions {
			if s.observes[name] {
				return true
			}
		}
		return false
	})
}

// wait polls cond, under the lock, each time the center changes.
func (c *NotificationCenter) wait(ctx context.Context, cond func() bool) error {
	for {
		c.mu.Lock()
		ok, ch := cond(), c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wakeLocked wakes waiters; c.mu must be held.
func (c *NotificationCenter) wakeLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *NotificationCenter) attach(s *npSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessions[s] = struct{}{}
}

func (c *NotificationCenter) detach(s *npSession) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sessions, s)
	c.wakeLocked()
}

func (c *NotificationCenter) observe(s *npSession, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.observes[name] = true
	c.wakeLocked()
}

func (c *NotificationCenter) post(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posted = append(c.posted, name)
	c.wakeLocked()
}

// NotificationConfig configures one notification_proxy connection.
type NotificationConfig struct {
	// Center is the device's notification center. Nil gives the connection a
	// private one nobody else sees.
	Center *NotificationCenter
	// OnPost, if set, runs after each post is recorded, on the serving
	// goroutine. Fault injection hooks in here, for example relaying a
	// cancel once the host posts syncDidStart.
	OnPost func(name string)
}

type npRequest struct {
	m   map[string]any
	err error
}

// ServeNotificationProxy serves com.apple.mobile.notification_proxy on
// conn: ObserveNotification and PostNotification {Name}, and Shutdown,
// answered with ProxyDeath before the connection closes. libimobiledevice
// waits for that answer on every client it frees (up to 30 s without it),
// and a backup frees one per notification it posts.
//
// Notifications relayed through the config's Center reach the host as
// {Command: RelayNotification, Name}. Unknown commands are ignored, as a
// device does.
func ServeNotificationProxy(ctx context.Context, conn net.Conn, cfg NotificationConfig) error {
	const service = "notification_proxy"
	defer own(ctx, conn)()
	center := cfg.Center
	if center == nil {
		center = NewNotificationCenter()
	}
	s := &npSession{relay: make(chan string, relayQueue), observes: map[string]bool{}}
	center.attach(s)
	defer center.detach(s)

	// Requests are read on their own goroutine so that relayed
	// notifications go out while the host is silent, as the device's do.
	reqs := make(chan npRequest)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			m, err := readDict(conn)
			select {
			case reqs <- npRequest{m, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case name := <-s.relay:
			msg := map[string]any{"Command": notification.CommandRelay, "Name": name}
			if err := wire.WritePlist(conn, msg, wire.XML); err != nil {
				return ended(ctx, service, err)
			}
		case r := <-reqs:
			if r.err != nil {
				return ended(ctx, service, r.err)
			}
			cmd, ok := str(r.m, "Command")
			if !ok {
				return ended(ctx, service, fmt.Errorf("request without a Command: %w", ErrMalformed))
			}
			switch cmd {
			case notification.CommandObserve, notification.CommandPost:
				name, ok := str(r.m, "Name")
				if !ok || name == "" {
					return ended(ctx, service, fmt.Errorf("%s without a Name: %w", cmd, ErrMalformed))
				}
				if cmd == notification.CommandObserve {
					center.observe(s, name)
					continue
				}
				center.post(name)
				if cfg.OnPost != nil {
					cfg.OnPost(name)
				}
			case notification.CommandShutdown:
				if err := wire.WritePlist(conn, map[string]any{"Command": notification.CommandProxyDeath}, wire.XML); err != nil {
					return ended(ctx, service, err)
				}
				return nil
			}
		}
	}
}
