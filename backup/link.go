package backup

import (
	"net"
	"sync"
	"time"
)

// link wraps the mobilebackup2 connection. It keeps a read and a write
// deadline at most one timeout ahead of the last byte that moved, which is
// the stall timer: a device that sends nothing, or accepts nothing, for
// that long makes the blocked call fail with os.ErrDeadlineExceeded,
// unless its thinker (liveness.go) judges the silence to be a phone that
// thinks, when the read waits on.
//
// Re-arming a deadline on every Read would cost a timer update per call;
// instead a deadline is re-armed once a sixteenth of the timeout has
// passed, so the effective bound lies between 15/16 and the whole
// timeout.
//
// Reads and writes come from one goroutine (DeviceLink is strictly
// request/response); abort may be called from any goroutine and wins
// over a deadline being re-armed, because it closes the connection.
type link struct {
	net.Conn
	timeout   time.Duration
	readArmed time.Time
	writeArm  time.Time
	// nread counts the bytes read, so a caller can tell a silence between
	// messages from one in the middle of a message.
	nread int64
	// lastIO is when a byte last moved either way; think, when set,
	// judges a read that timed out (liveness.go) and may let it go on.
	lastIO time.Time
	think  *thinker

	mu     sync.Mutex
	reason error // why abort closed the connection, if it did
}

func newLink(c net.Conn, timeout time.Duration) *link {
	return &link{Conn: c, timeout: timeout, lastIO: time.Now()}
}

// setTimeout changes the bound; the next Read and Write arm it afresh.
func (l *link) setTimeout(d time.Duration) {
	l.timeout = d
	l.readArmed, l.writeArm = time.Time{}, time.Time{}
}

func (l *link) Read(p []byte) (int, error) {
	for {
		if now := time.Now(); now.Sub(l.readArmed) > l.timeout/16 {
			_ = l.Conn.SetReadDeadline(now.Add(l.timeout))
			l.readArmed = now
		}
		n, err := l.Conn.Read(p)
		l.nread += int64(n)
		if n > 0 {
			l.lastIO = time.Now()
		}
		if n > 0 || err == nil || l.think == nil || !isTimeout(err) || l.aborted() != nil {
			return n, err
		}
		quiet := time.Since(l.lastIO)
		ok, why := l.think.judge(quiet, l.nread)
		if !ok {
			if why != "" {
				err = &silenceError{why: why, err: err}
			}
			return n, err
		}
		l.think.onThink(quiet)
		now := time.Now()
		_ = l.Conn.SetReadDeadline(now.Add(min(l.timeout, l.think.limit-quiet)))
		l.readArmed = now
	}
}

func (l *link) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(l.writeArm) > l.timeout/16 {
		_ = l.Conn.SetWriteDeadline(now.Add(l.timeout))
		l.writeArm = now
	}
	n, err := l.Conn.Write(p)
	if n > 0 {
		l.lastIO = time.Now()
	}
	return n, err
}

// abort records why the session must end and closes the connection, which
// wakes a blocked Read or Write at once. The first reason wins.
func (l *link) abort(reason error) {
	l.mu.Lock()
	if l.reason == nil {
		l.reason = reason
	}
	l.mu.Unlock()
	l.Conn.Close()
}

// aborted returns the reason given to abort, or nil.
func (l *link) aborted() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reason
}
