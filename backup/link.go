package backup

import (
	"net"
	"sync"
	"time"
)

// link wraps the mobilebackup2 connection. It keeps a read and a write
// deadline at most one timeout ahead of the last byte that moved, which is
// the stall timer: a device that sends nothing, or accepts nothing, for
// that long makes the blocked call fail with os.ErrDeadlineExceeded.
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

	mu     sync.Mutex
	reason error // why abort closed the connection, if it did
}

func newLink(c net.Conn, timeout time.Duration) *link {
	return &link{Conn: c, timeout: timeout}
}

// setTimeout changes the bound; the next Read and Write arm it afresh.
func (l *link) setTimeout(d time.Duration) {
	l.timeout = d
	l.readArmed, l.writeArm = time.Time{}, time.Time{}
}

func (l *link) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(l.readArmed) > l.timeout/16 {
		_ = l.Conn.SetReadDeadline(now.Add(l.timeout))
		l.readArmed = now
	}
	n, err := l.Conn.Read(p)
	l.nread += int64(n)
	return n, err
}

func (l *link) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(l.writeArm) > l.timeout/16 {
		_ = l.Conn.SetWriteDeadline(now.Add(l.timeout))
		l.writeArm = now
	}
	return l.Conn.Write(p)
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
