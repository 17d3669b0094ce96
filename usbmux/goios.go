package usbmux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/wire"
	ios "github.com/danielpaulus/go-ios/ios"
)

// This file is the bridge to go-ios's UsbMuxConnection, which sends our
// Listen, Connect, ReadBUID and ReadPairRecord requests and reads their
// replies (see the comment at the top of mux.go for what it is used for
// and what is not). go-ios runs on a connection we dial, behind muxGuard,
// under our deadlines, inside goiosCall. go-ios logs through slog.Default
// unless ios.SetLogger says otherwise; that setting is process-wide, so it
// is main's to make, not this package's.

// muxGuard is the net.Conn go-ios reads usbmuxd through. go-ios checks a
// packet's length but neither its version and type nor a reply's tag,
// drops most decode errors, and hands whatever arrives to the plist
// library, whose recursion a hostile plist can drive past the stack
// limit: a fatal error that no recover catches. So the guard reads each packet first, with our framing
// and our hardened decoder, and lets go-ios read its bytes only once it
// passed; a packet that fails never reaches go-ios, which sees a read
// error instead. The guard also keeps what go-ios would flatten into a
// string: the socket's own error (so a timeout or a cancellation is told
// from a hang-up) and our decode of the reply (so a Result number stays a
// number).
//
// The guard reads exactly one packet when go-ios asks for bytes and none
// ahead, so after a Connect not a byte of the device's stream is taken.
type muxGuard struct {
	net.Conn

	// tag is what the next reply must echo. Pushed notifications carry
	// tag 0, so once listening any tag is taken.
	tag       uint32
	listening bool
	// vet, when set, checks a decoded reply further before go-ios sees it.
	vet func(muxMessage) error

	buf   []byte     // the checked packet go-ios is reading
	msg   muxMessage // our decode of the last packet go-ios was given
	got   bool       // msg is set
	ioErr error      // the socket's first error, unflattened
	bad   error      // why a packet was refused; cause set
}

func (g *muxGuard) Read(p []byte) (int, error) {
	if len(g.buf) == 0 {
		if err := g.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

func (g *muxGuard) Write(p []byte) (int, error) {
	n, err := g.Conn.Write(p)
	if err != nil && g.ioErr == nil {
		g.ioErr = err
	}
	return n, err
}

// fill reads and checks the next packet. After a failure the connection
// is out of step for good, so every later read fails too.
func (g *muxGuard) fill() error {
	if g.bad != nil {
		return g.bad
	}
	if g.ioErr != nil {
		return g.ioErr
	}
	h, body, err := wire.ReadMuxPacket(g.Conn, wire.MaxMuxPayload)
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) || errors.Is(err, wire.ErrMalformed) {
			g.bad = protocolError("%w", err)
			return g.bad
		}
		g.ioErr = err
		return err
	}
	if !g.listening && h.Tag != g.tag {
		g.bad = protocolError("reply tagged %d to request %d", h.Tag, g.tag)
		return g.bad
	}
	msg, err := decodeMuxPacket(h, body)
	if err == nil && g.vet != nil {
		err = g.vet(msg)
	}
	if err != nil {
		g.bad = err
		return err
	}
	var b bytes.Buffer
	_ = wire.WriteMuxPacket(&b, h.Version, h.Message, h.Tag, body)
	g.buf, g.msg, g.got = b.Bytes(), msg, true
	return nil
}

// errGoIOSPanic is wrapped by the error goiosCall makes of a panic.
var errGoIOSPanic = errors.New("go-ios panicked")

// goiosCall runs f, a call into go-ios, and turns a panic into a
// protocol_error wrapping wire.ErrMalformed: go-ios panics on some input
// and some misuse (its plist encoder, GetSocketTypeAndAddress, Close
// after ReleaseDeviceConnection, the stubs of DeviceConnectionRWC), and a
// panic on one of the daemon's goroutines would kill the daemon.
func goiosCall(what string, f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = protocolError("%s: %w: %v: %w", what, errGoIOSPanic, r, wire.ErrMalformed)
		}
	}()
	f()
	return nil
}

// goiosMux is one connection to usbmuxd, dialled by us, spoken over by
// go-ios through a guard.
type goiosMux struct {
	*muxConn
	guard *muxGuard
	u     *ios.UsbMuxConnection
	sent  uint32 // requests go-ios sent on this connection
	recv  func() (ios.AttachedMessage, error)
}

// dialGoIOS connects to usbmuxd at the configured address. go-ios's own
// constructors are not used: they read USBMUXD_SOCKET_ADDRESS from the
// environment, panic on a value without "://" and take no context.
func (c *Client) dialGoIOS(ctx context.Context) (*goiosMux, error) {
	m, err := c.dialMux(ctx)
	if err != nil {
		return nil, err
	}
	return newGoIOSMux(m), nil
}

func newGoIOSMux(m *muxConn) *goiosMux {
	g := &muxGuard{Conn: m.conn}
	return &goiosMux{muxConn: m, guard: g, u: ios.NewUsbMuxConnection(ios.NewDeviceConnectionWithConn(g))}
}

// Close closes our socket. go-ios's UsbMuxConnection.Close is never
// called: after ReleaseDeviceConnection it dereferences nil.
func (x *goiosMux) Close() error { return x.conn.Close() }

// exchange runs call, one go-ios request and its reply, under the
// context's deadline (go-ios has none) and goiosCall, and returns the
// reply as our decoder read it. call keeps go-ios's own results; the
// caller weighs them against the reply, which is what counts. An error
// here means there is no reply to weigh.
func (x *goiosMux) exchange(ctx context.Context, msgType string, vet func(muxMessage) error, call func(u *ios.UsbMuxConnection)) (muxMessage, error) {
	defer bindDeadline(ctx, x.conn, x.c.cfg.Timeout)()
	// go-ios numbers its requests 1, 2, ... on a connection.
	x.sent++
	x.guard.tag, x.guard.vet, x.guard.got = x.sent, vet, false
	perr := goiosCall("usbmuxd "+msgType, func() { call(x.u) })
	if err := x.failure(ctx, "usbmuxd "+msgType, perr); err != nil {
		return muxMessage{}, err
	}
	if !x.guard.got {
		return muxMessage{}, protocolError("usbmuxd %s: go-ios returned without reading a reply", msgType)
	}
	return x.guard.msg, nil
}

// failure is what went wrong in a call into go-ios, most telling first:
// a packet the guard refused, then the socket's error (cut short by the
// context, timed out, or closed), then a panic.
func (x *goiosMux) failure(ctx context.Context, what string, perr error) error {
	switch {
	case x.guard.bad != nil:
		return fmt.Errorf("%s: %w", what, x.guard.bad)
	case x.guard.ioErr != nil:
		return ioFailure(ctx, cause.UsbmuxdUnavailable, what, x.guard.ioErr)
	}
	return perr
}

// disagree reports go-ios refusing a reply that our decoder read as
// good: the two libraries read the packet differently, so trust neither.
func disagree(msgType string, gerr error) error {
	return protocolError("usbmuxd %s: go-ios could not read a reply our decoder accepted: %v", msgType, gerr)
}

// listen sends Listen through go-ios and keeps its receive func.
// go-ios takes any reply whose Number does not decode to a non-zero value
// for success, garbage included, so the verdict is result's on our decode.
func (x *goiosMux) listen(ctx context.Context) error {
	var gerr error
	reply, err := x.exchange(ctx, "Listen", nil, func(u *ios.UsbMuxConnection) {
		x.recv, gerr = u.Listen()
	})
	if err != nil {
		return err
	}
	if err := result("Listen", reply); err != nil {
		return err
	}
	if gerr != nil || x.recv == nil {
		return disagree("Listen", gerr)
	}
	x.guard.listening, x.guard.vet = true, nil
	return nil
}

// notification reads the next pushed message with go-ios's receive func
// and returns it in our form, its fields not yet checked (applyNotification
// does that). It sets no deadline: an idle usbmuxd is silent for days;
// the caller closes the socket to cut it short.
func (x *goiosMux) notification(ctx context.Context) (muxMessage, error) {
	var am ios.AttachedMessage
	var gerr error
	x.guard.got = false
	perr := goiosCall("usbmuxd notification", func() { am, gerr = x.recv() })
	switch {
	case x.guard.bad != nil:
		return muxMessage{}, fmt.Errorf("usbmuxd notification: %w", x.guard.bad)
	case x.guard.ioErr != nil:
		return muxMessage{}, ioFailure(ctx, cause.UsbmuxdUnavailable, fmt.Sprintf("usbmuxd at %s: connection lost", x.c.cfg.Addr), x.guard.ioErr)
	case perr != nil:
		return muxMessage{}, perr
	}
	if gerr != nil || !x.guard.got {
		return muxMessage{}, disagree("notification", gerr)
	}
	return fromAttachedMessage(am)
}

// fromAttachedMessage maps go-ios's reading of a notification to ours.
// go-ios reads Attached, Detached and Paired, and whatever else usbmuxd
// pushes, into one AttachedMessage with int fields; negative ones, which
// usbmuxd never sends, are refused here rather than wrapped round.
// Properties stays nil when the message had none (Detached and Paired
// name only the DeviceID).
func fromAttachedMessage(am ios.AttachedMessage) (muxMessage, error) {
	m := muxMessage{MessageType: am.MessageType}
	p := am.Properties
	for _, f := range []struct {
		name string
		v    int
	}{
		{"DeviceID", am.DeviceID},
		{"Properties DeviceID", p.DeviceID},
		{"ConnectionSpeed", p.ConnectionSpeed},
		{"LocationID", p.LocationID},
		{"ProductID", p.ProductID},
	} {
		if f.v < 0 {
			return muxMessage{}, protocolError("usbmuxd %.40q: %s %d is negative", am.MessageType, f.name, f.v)
		}
	}
	m.DeviceID = uint64(am.DeviceID)
	if p != (ios.DeviceProperties{}) {
		m.Properties = &muxProperties{
			ConnectionSpeed: uint64(p.ConnectionSpeed),
			ConnectionType:  p.ConnectionType,
			DeviceID:        uint64(p.DeviceID),
			LocationID:      uint64(p.LocationID),
			ProductID:       uint64(p.ProductID),
			SerialNumber:    p.SerialNumber,
		}
	}
	return m, nil
}

// vetPairRecordReply checks the pair record inside a ReadPairRecord reply
// before go-ios decodes it: go-ios runs the plist library on it without
// our limits and answers an empty record when it does not decode. A
// record that fails is pairing_invalid, as DecodePairRecord says.
func vetPairRecordReply(m muxMessage) error {
	if len(m.PairRecordData) == 0 {
		return nil
	}
	_, err := decodePairRecordData(m.PairRecordData)
	return err
}

// pairRecordFromGoIOS copies go-ios's record into ours; the fields are
// the same plist keys.
func pairRecordFromGoIOS(r ios.PairRecord) *PairRecord {
	return &PairRecord{
		DeviceCertificate: r.DeviceCertificate,
		HostCertificate:   r.HostCertificate,
		HostPrivateKey:    r.HostPrivateKey,
		RootCertificate:   r.RootCertificate,
		RootPrivateKey:    r.RootPrivateKey,
		HostID:            r.HostID,
		SystemBUID:        r.SystemBUID,
		WiFiMACAddress:    r.WiFiMACAddress,
		EscrowBag:         r.EscrowBag,
	}
}
