package daemon

import (
	"net"
	"sync"
)

// maxConns bounds the connections open at once on each TCP listener (the
// API's port, /metrics): every one holds a descriptor, and any local user
// or web page can open them. The socket needs no bound: its mode keeps
// others out.
const maxConns = 64

// limitListener accepts at most n connections at once; the next waits in
// the kernel's backlog until one closes.
func limitListener(l net.Listener, n int) net.Listener {
	return &limitedListener{Listener: l, slots: make(chan struct{}, n)}
}

type limitedListener struct {
	net.Listener
	slots chan struct{}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	l.slots <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
}

// limitedConn gives its slot back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
