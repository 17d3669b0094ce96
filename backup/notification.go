package backup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/notification"
	"github.com/backupd/backupd/proto/wire"
)

// maxNotificationMessage bounds one notification_proxy message; real ones
// are a few hundred bytes.
const maxNotificationMessage = 64 << 10

// notificationClient is a host client of
// com.apple.mobile.notification_proxy: it posts and observes notifications
// on one connection. A goroutine reads what the device sends (relayed
// notifications at any time, ProxyDeath after Shutdown) and hands relayed
// names to onRelay; it ends when the connection does. Post and Observe may be called from any goroutine.
type notificationClient struct {
	conn    net.Conn
	timeout time.Duration
	onRelay func(name string)

	wmu        sync.Mutex
	proxyDeath chan struct{} // closed when the device answered Shutdown
	done       chan struct{} // closed when the reader ended
	readErr    error         // why the reader ended; read after done
}

// newNotificationClient starts reading conn. onRelay, if not nil, runs on
// the reading goroutine for each relayed notification; it must not block.
// timeout bounds each write.
func newNotificationClient(conn net.Conn, timeout time.Duration, onRelay func(string)) *notificationClient {
	n := &notificationClient{
		conn:       conn,
		timeout:    timeout,
		onRelay:    onRelay,
		proxyDeath: make(chan struct{}),
		done:       make(chan struct{}),
	}
	go n.read()
	return n
}

func (n *notificationClient) read() {
	defer close(n.done)
	died := false
	for {
		var msg map[string]any
		if err := wire.ReadPlist(n.conn, maxNotificationMessage, &msg); err != nil {
			n.readErr = err
			return
		}
		cmd, _ := msg["Command"].(string)
		switch cmd {
		case notification.CommandRelay:
			name, _ := msg["Name"].(string)
			if name != "" && n.onRelay != nil {
				n.onRelay(name)
			}
		case notification.CommandProxyDeath:
			if !died {
				died = true
				close(n.proxyDeath)
			}
		}
	}
}

// send writes one command, bounded by ctx and the timeout.
func (n *notificationClient) send(ctx context.Context, msg map[string]any) error {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	dl := time.Now().Add(n.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = n.conn.SetWriteDeadline(dl)
	stop := context.AfterFunc(ctx, func() { n.conn.Close() })
	defer stop()
	if err := wire.WritePlist(n.conn, msg, wire.XML); err != nil {
		return cause.New(cause.Disconnected, fmt.Errorf("notification_proxy %s: %w", msg["Command"], err))
	}
	return nil
}

// Post posts a notification on the device.
func (n *notificationClient) Post(ctx context.Context, name string) error {
	return n.send(ctx, map[string]any{"Command": notification.CommandPost, "Name": name})
}

// Observe asks the device to relay each of names.
func (n *notificationClient) Observe(ctx context.Context, names ...string) error {
	for _, name := range names {
		if err := n.send(ctx, map[string]any{"Command": notification.CommandObserve, "Name": name}); err != nil {
			return err
		}
	}
	return nil
}

// Close says Shutdown, waits (within ctx and the timeout) for the
// device's ProxyDeath so that the posts before it are not lost, and
// closes the connection. It returns once the reader has ended.
func (n *notificationClient) Close(ctx context.Context) error {
	err := n.send(ctx, map[string]any{"Command": notification.CommandShutdown})
	if err == nil {
		t := time.NewTimer(n.timeout)
		select {
		case <-n.proxyDeath:
		case <-n.done:
			select {
			case <-n.proxyDeath:
			default:
				err = fmt.Errorf("notification_proxy: closed before ProxyDeath: %w", n.readErr)
			}
		case <-t.C:
			err = errors.New("notification_proxy: no ProxyDeath after Shutdown")
		case <-ctx.Done():
			err = ctx.Err()
		}
		t.Stop()
	}
	n.conn.Close()
	<-n.done
	return err
}

// passcodeState reports the passcode prompt to Target.AwaitingPasscode:
// each change once, one call at a time, from whichever goroutine saw it
// (the notification reader, the guess timer, the engine).
type passcodeState struct {
	report func(bool)

	mu      sync.Mutex
	showing bool
	// known: the device said (a notification) or showed (its first
	// message) where it stands, so there is nothing left to guess.
	known bool
}

// fromNotification is the device's own word: the prompt shows or went away.
func (p *passcodeState) fromNotification(showing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.known = true
	p.change(showing)
}

// started: the device sent its first message, so no prompt shows.
func (p *passcodeState) started() { p.fromNotification(false) }

// guess reports the prompt as likely showing unless the device has said
// or shown otherwise.
func (p *passcodeState) guess() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.known {
		p.change(true)
	}
}

// end reports the prompt gone when the backup ends, whatever happened.
func (p *passcodeState) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.known = true
	p.change(false)
}

// change reports showing if it differs from what was reported; p.mu is
// held.
func (p *passcodeState) change(showing bool) {
	if p.showing == showing {
		return
	}
	p.showing = showing
	if p.report != nil {
		p.report(showing)
	}
}

// productVersion is the device's iOS version as lockdown gave it ("" when
// it did not).
func (v deviceValues) productVersion() string {
	s, _ := v.root["ProductVersion"].(string)
	return s
}

// asksPasscode reports whether an iOS version asks for the passcode at
// every backup: 16.1 and later. An unreadable version does not.
func asksPasscode(version string) bool {
	var major, minor int
	parts := strings.SplitN(version, ".", 3)
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return false
	}
	if len(parts) > 1 {
		if minor, err = strconv.Atoi(parts[1]); err != nil {
			return false
		}
	}
	return major > 16 || major == 16 && minor >= 1
}
