package usbmux

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/wire"
)

// maxLockdownReply bounds one lockdown reply. The largest real one, the
// whole root domain of GetValue, is a few tens of KiB.
const maxLockdownReply = 4 << 20

// closeNotifyWait bounds how long StopSession waits for the device's
// close_notify, on top of the caller's deadline.
const closeNotifyWait = 5 * time.Second

// Lockdown is a client of lockdownd on one connection. lockdownd answers
// requests one at a time, so calls are serialised; a Lockdown is safe for
// concurrent use.
//
// Every exchange has a deadline: the context's, or the client's timeout
// when that is earlier. After an I/O failure, a timeout or a reply to the
// wrong request, the stream may be out of step, so every later call fails
// at once with the first failure.
//
// Ours, not go-ios's LockDownConnection, which lacks what backupd needs:
// its GetValue drops the reply's Error (so no typed errors), it has no
// QueryType or ValidatePair and no EscrowBag in StartService, its TLS
// accepts any device certificate where we pin the pair record's, and its
// StopSession neither checks the reply nor leaves TLS. Its 4-byte plist
// codec is not used either: it formats I/O errors into strings (a timeout
// could no longer be told from a hang-up), allows 16 MiB frames where we
// allow 4, and its encoder panics on a value it cannot marshal.
type Lockdown struct {
	mu      sync.Mutex
	raw     net.Conn
	tls     *tls.Conn // set while a session runs over TLS
	label   string
	timeout time.Duration
	session string
	broken  error
}

// NewLockdown returns a lockdown client on conn, a connection to the
// device's port 62078. timeout bounds each exchange (0: only the
// context's deadline applies); label is sent with every request.
func NewLockdown(conn net.Conn, label string, timeout time.Duration) *Lockdown {
	if label == "" {
		label = "backupd"
	}
	return &Lockdown{raw: conn, label: label, timeout: timeout}
}

// DialLockdown connects to lockdownd on dev.
func (c *Client) DialLockdown(ctx context.Context, dev Device) (*Lockdown, error) {
	conn, err := c.Connect(ctx, dev.DeviceID, lockdown.Port)
	if err != nil {
		return nil, fmt.Errorf("lockdown on %s: %w", dev.UDID, err)
	}
	return NewLockdown(conn, c.cfg.Label, c.cfg.Timeout), nil
}

// Close ends the session, if one runs and the stream is healthy, and
// closes the connection. A call in flight on another goroutine is cut
// short rather than waited for: closing is how a caller gives up.
func (l *Lockdown) Close() error {
	if !l.mu.TryLock() {
		return l.raw.Close()
	}
	active := l.session != "" && l.broken == nil
	l.mu.Unlock()
	if active {
		ctx, cancel := context.WithTimeout(context.Background(), closeNotifyWait)
		_ = l.StopSession(ctx)
		cancel()
	}
	return l.raw.Close()
}

// SessionID returns the running session's id, or "".
func (l *Lockdown) SessionID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.session
}

func (l *Lockdown) rw() io.ReadWriter {
	if l.tls != nil {
		return l.tls
	}
	return l.raw
}

// fail marks the stream unusable and returns err.
func (l *Lockdown) fail(err error) error {
	if l.broken == nil {
		l.broken = err
	}
	return err
}

// call sends one request and returns its reply. A reply with an Error is
// a *LockdownError. l.mu must be held.
func (l *Lockdown) call(ctx context.Context, request string, fields map[string]any) (map[string]any, error) {
	if l.broken != nil {
		return nil, fmt.Errorf("lockdown %s: connection unusable after an earlier failure: %w", request, l.broken)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lockdown %s: %w", request, err)
	}
	defer bindDeadline(ctx, l.raw, l.timeout)()
	req := map[string]any{"Label": l.label, "Request": request}
	for k, v := range fields {
		req[k] = v
	}
	// XML, as libimobiledevice sends; devices answer in kind.
	if err := wire.WritePlist(l.rw(), req, wire.XML); err != nil {
		return nil, l.fail(ioFailure(ctx, cause.Disconnected, "lockdown "+request, err))
	}
	b, err := wire.ReadFrame(l.rw(), maxLockdownReply)
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) {
			return nil, l.fail(protocolError("lockdown %s reply: %w", request, err))
		}
		return nil, l.fail(ioFailure(ctx, cause.Disconnected, "lockdown "+request, err))
	}
	reply, err := decodeLockdownReply(request, b)
	if errors.Is(err, errOutOfStep) {
		return nil, l.fail(err)
	}
	return reply, err
}

var errOutOfStep = errors.New("reply to another request")

// decodeLockdownReply reads a reply to request. Every reply echoes
// Request (libimobiledevice fails without it too); one that names another
// request means the stream is out of step. A reply carrying Error is a
// *LockdownError, kept whole so the caller sees the device's own words.
func decodeLockdownReply(request string, b []byte) (map[string]any, error) {
	var reply map[string]any
	if err := wire.Decode(b, &reply); err != nil {
		return nil, protocolError("lockdown %s reply: %w", request, err)
	}
	if reply == nil {
		return nil, protocolError("lockdown %s reply is not a dictionary", request)
	}
	echo, hasEcho := reply["Request"]
	if hasEcho {
		s, ok := echo.(string)
		if !ok {
			return nil, protocolError("lockdown %s reply: Request is a %T", request, echo)
		}
		if s != request {
			return nil, protocolError("lockdown %s: got the reply to %.64q: %w", request, s, errOutOfStep)
		}
	}
	if e, ok := reply["Error"]; ok {
		s, ok := e.(string)
		if !ok || s == "" {
			return nil, protocolError("lockdown %s reply: Error is %T %.64v, want a name", request, e, e)
		}
		return nil, &LockdownError{Request: request, Code: s}
	}
	if !hasEcho {
		return nil, protocolError("lockdown %s reply does not name its request", request)
	}
	if r, ok := reply["Result"].(string); ok && r == "Failure" {
		return nil, &LockdownError{Request: request, Code: "Failure"}
	}
	return reply, nil
}

// QueryType asks what answers on the port; lockdownd says
// "com.apple.mobile.lockdown".
func (l *Lockdown) QueryType(ctx context.Context) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	reply, err := l.call(ctx, "QueryType", nil)
	if err != nil {
		return "", err
	}
	t, ok := reply["Type"].(string)
	if !ok {
		return "", protocolError("lockdown QueryType: reply without a Type")
	}
	return t, nil
}

// GetValue reads a value; an empty domain is the root domain and an empty
// key the whole domain as a map[string]any. A value the device does not
// have is a *LockdownError that errors.Is ErrMissingValue. Without a
// session only a few root keys answer (GetProhibited otherwise).
func (l *Lockdown) GetValue(ctx context.Context, domain, key string) (any, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fields := map[string]any{}
	if domain != "" {
		fields["Domain"] = domain
	}
	if key != "" {
		fields["Key"] = key
	}
	reply, err := l.call(ctx, "GetValue", fields)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", domainName(domain), key, err)
	}
	v, ok := reply["Value"]
	if !ok {
		return nil, protocolError("lockdown GetValue %s %s: reply without a Value", domainName(domain), key)
	}
	return v, nil
}

func domainName(d string) string {
	if d == "" {
		return "(root)"
	}
	return d
}

// StartSession starts a session with the host identity in rec and, when
// the device asks for it (every iOS since 5), switches the connection to
// TLS, accepting the device only if it presents exactly rec's
// DeviceCertificate. It returns the session id.
//
// The device refuses with a *LockdownError: InvalidHostID when it no
// longer knows rec (pairing_invalid), PasswordProtected when locked
// (device_locked). A device certificate other than rec's is
// pairing_invalid too.
func (l *Lockdown) StartSession(ctx context.Context, rec *PairRecord) (string, error) {
	cfg, err := rec.pinnedTLSConfig()
	if err != nil {
		return "", fmt.Errorf("lockdown StartSession: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.session != "" {
		return "", fmt.Errorf("lockdown StartSession: session %s already running", l.session)
	}
	reply, err := l.call(ctx, "StartSession", map[string]any{
		"HostID":     rec.HostID,
		"SystemBUID": rec.SystemBUID,
	})
	if err != nil {
		return "", err
	}
	id, _ := reply["SessionID"].(string)
	if id == "" {
		return "", l.fail(protocolError("lockdown StartSession: reply without a SessionID"))
	}
	ssl, _ := reply["EnableSessionSSL"].(bool)
	if ssl {
		if err := l.handshake(ctx, cfg); err != nil {
			return "", l.fail(fmt.Errorf("lockdown StartSession: %w", err))
		}
	}
	l.session = id
	return id, nil
}

func (l *Lockdown) handshake(ctx context.Context, cfg *tls.Config) error {
	defer bindDeadline(ctx, l.raw, l.timeout)()
	t := tls.Client(l.raw, cfg)
	if err := t.HandshakeContext(ctx); err != nil {
		return tlsFailure(ctx, err)
	}
	l.tls = t
	return nil
}

// tlsFailure classifies a failed handshake. A certificate other than the
// pinned one, or the device refusing ours with an alert, means the pairing
// no longer holds: pair again.
func tlsFailure(ctx context.Context, err error) error {
	var alert tls.AlertError
	var rh tls.RecordHeaderError
	switch {
	case errors.Is(err, errCertMismatch):
		return cause.New(cause.PairingInvalid, fmt.Errorf("TLS: %w", err))
	case errors.As(err, &alert):
		return cause.New(cause.PairingInvalid, fmt.Errorf("TLS: the device refused our certificate: %w", err))
	case errors.As(err, &rh):
		return protocolError("TLS: the device did not answer in TLS: %w", err)
	default:
		return ioFailure(ctx, cause.Disconnected, "TLS handshake", err)
	}
}

// StopSession ends the session and, when it ran over TLS, returns the
// connection to plain text the way libimobiledevice does: send our
// close_notify, then wait for the device's, so neither side mistakes a
// stray TLS record for the next plain request. Without a session it does
// nothing.
func (l *Lockdown) StopSession(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.session == "" {
		return nil
	}
	_, err := l.call(ctx, "StopSession", map[string]any{"SessionID": l.session})
	l.session = ""
	var le *LockdownError
	if err != nil && !errors.As(err, &le) {
		return err // the stream is already marked broken
	}
	// Even when the device refused (SessionInactive), it has left TLS.
	if l.tls != nil {
		if cerr := l.closeTLS(ctx); cerr != nil {
			return l.fail(fmt.Errorf("lockdown StopSession: %w", cerr))
		}
	}
	return err
}

func (l *Lockdown) closeTLS(ctx context.Context) error {
	t := l.tls
	l.tls = nil
	wctx, cancel := context.WithTimeout(ctx, closeNotifyWait)
	defer cancel()
	defer bindDeadline(wctx, l.raw, l.timeout)()
	if err := t.CloseWrite(); err != nil {
		return ioFailure(wctx, cause.Disconnected, "TLS close_notify", err)
	}
	var buf [256]byte
	for {
		n, err := t.Read(buf[:])
		if n > 0 {
			return protocolError("device sent %d bytes of data after StopSession", n)
		}
		if errors.Is(err, io.EOF) {
			return nil // the device's close_notify
		}
		if err != nil {
			return ioFailure(wctx, cause.Disconnected, "waiting for the device's close_notify", err)
		}
	}
}

// Service is a started lockdown service: connect to Port through usbmuxd.
type Service struct {
	Name string
	Port uint16
	// SSL means the service speaks TLS from its first byte, with the same
	// certificates as the lockdown session.
	SSL bool
}

// StartService asks lockdownd to start a service. escrow, when not nil,
// is sent as EscrowBag: mobilebackup2 refuses to start without it
// (EscrowLocked), so pass the pair record's. It needs a session.
func (l *Lockdown) StartService(ctx context.Context, name string, escrow []byte) (Service, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fields := map[string]any{"Service": name}
	if escrow != nil {
		fields["EscrowBag"] = escrow
	}
	reply, err := l.call(ctx, "StartService", fields)
	if err != nil {
		return Service{}, fmt.Errorf("%s: %w", name, err)
	}
	return decodeService(name, reply)
}

func decodeService(name string, reply map[string]any) (Service, error) {
	p, ok := wire.Uint(reply["Port"])
	if !ok || p == 0 || p > math.MaxUint16 {
		return Service{}, protocolError("lockdown StartService %s: port %.32v is not a TCP port", name, reply["Port"])
	}
	ssl, _ := reply["EnableServiceSSL"].(bool)
	return Service{Name: name, Port: uint16(p), SSL: ssl}, nil
}

// ValidatePair asks the device whether it still trusts rec.
func (l *Lockdown) ValidatePair(ctx context.Context, rec *PairRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.call(ctx, "ValidatePair", map[string]any{
		"PairRecord":      rec.pairingRecord(),
		"ProtocolVersion": "2",
	})
	return err
}

// Pair asks the device to trust rec. The first request raises the Trust
// prompt and answers PairingDialogResponsePending; once the user taps
// Trust, the same request succeeds and returns the escrow bag (nil if the
// device sent none). UserDeniedPairing when they tapped Don't Trust,
// PasswordProtected while the device is locked.
func (l *Lockdown) Pair(ctx context.Context, rec *PairRecord) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	reply, err := l.call(ctx, "Pair", map[string]any{
		"PairRecord":      rec.pairingRecord(),
		"ProtocolVersion": "2",
		"PairingOptions":  map[string]any{"ExtendedPairingErrors": true},
	})
	if err != nil {
		return nil, err
	}
	escrow, _ := reply["EscrowBag"].([]byte)
	return escrow, nil
}
