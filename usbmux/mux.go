package usbmux

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/wire"
	ios "github.com/danielpaulus/go-ios/ios"
)

// Where usbmuxd's protocol comes from.
//
// go-ios (github.com/danielpaulus/go-ios/ios), the library the design card
// names for usbmux, lockdown, pairing and TLS, sends Listen and reads the
// notifications, and sends Connect, ReadBUID and ReadPairRecord and
// decodes their replies (goios.go). As it stands it ignores decode errors
// (an empty value, or success, for garbage), never checks a reply's header
// or tag, has no deadlines or context, panics on some input and reads the
// socket address from the environment. So it runs on our terms:
//   - we dial usbmuxd at an explicit address with a context and hand go-ios
//     the connection; its env-reading constructors are never called;
//   - each exchange runs under our deadline, set on that connection;
//   - go-ios reads through muxGuard, which frames and decodes every packet
//     with our hardened decoder and checks its tag first, so nothing we
//     would refuse reaches go-ios; the verdict on a reply (Result numbers,
//     missing fields) is taken from our decode;
//   - what go-ios returns is checked as if it came off the wire (UDIDs and
//     IDs by applyNotification, the pair record by check);
//   - every call into go-ios is under recover (goiosCall).
//
// Ours, over proto/wire, each because go-ios lacks it or gets it wrong:
//   - ListDevices: the watcher reconciles against the list, and go-ios
//     answers an empty one for garbage or a refusal, which would detach
//     every device;
//   - SavePairRecord (go-ios's is unexported) and DeletePairRecord (absent);
//   - the raw pipe after Connect is our net.Conn, and the lockdown client
//     and pairing are ours: see lockdown.go and trust.go.

// Connection types usbmuxd reports.
const (
	ConnUSB     = "USB"
	ConnNetwork = "Network"
)

// Device is an iPhone as usbmuxd lists it.
type Device struct {
	// UDID is the device's unique id (usbmuxd's SerialNumber property).
	// It is checked to be a safe file name: letters, digits and '-'.
	UDID string
	// DeviceID is usbmuxd's handle for this attachment. It changes on every
	// plug-in and when usbmuxd restarts; Connect needs it.
	DeviceID uint32
	// ConnType is ConnUSB or ConnNetwork.
	ConnType string
	// Speed is the link speed in bit/s as usbmuxd reports it
	// (480000000 for USB 2 High Speed); 0 when usbmuxd does not say, as
	// for network devices.
	Speed uint64
	// LocationID and ProductID are the USB location and product, when
	// usbmuxd reports them.
	LocationID uint64
	ProductID  uint64
}

// Config configures a Client.
type Config struct {
	// Addr is where usbmuxd listens; the zero value means DefaultAddr().
	Addr Addr
	// Timeout bounds each exchange with usbmuxd or the device when the
	// context has no earlier deadline, so that a peer that stops answering
	// never hangs a caller that forgot a deadline. Default 10 s.
	Timeout time.Duration
	// Label names us to lockdownd (Label) and to usbmuxd (ProgName) in the
	// requests we encode; those go-ios encodes say "go-usbmux".
	// Default "backupd".
	Label string
	// Logger receives protocol traces at debug level; nil discards them.
	Logger *slog.Logger
}

// DefaultTimeout is Config.Timeout's default.
const DefaultTimeout = 10 * time.Second

// Client talks to usbmuxd and, through it, to lockdownd on the devices.
// Each call opens its own connection to usbmuxd, as libusbmuxd does, so
// calls never queue behind each other; a Client is safe for concurrent use.
type Client struct {
	cfg    Config
	log    *slog.Logger
	dialer net.Dialer

	// pending holds the certificates of pairings the device has not
	// answered yet, per UDID, so that the Pair sent after the user taps
	// Trust carries the same HostID as the one that raised the prompt,
	// and we do not make three RSA keys on every check.
	mu      sync.Mutex
	pending map[string]*pendingPair
	// oddLogged holds the odd usbmuxd entries already logged (noteOdd).
	oddLogged map[string]bool
}

// NewClient returns a client for the usbmuxd at cfg.Addr.
func NewClient(cfg Config) *Client {
	if cfg.Addr == (Addr{}) {
		cfg.Addr = DefaultAddr()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Label == "" {
		cfg.Label = "backupd"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, log: log, pending: map[string]*pendingPair{}, oddLogged: map[string]bool{}}
}

// Addr returns the usbmuxd address the client uses.
func (c *Client) Addr() Addr { return c.cfg.Addr }

// unavailable wraps a failure to reach or keep usbmuxd.
func (c *Client) unavailable(err error) error {
	return cause.New(cause.UsbmuxdUnavailable, fmt.Errorf("usbmuxd at %s: %w", c.cfg.Addr, err))
}

// muxConn is one connection to usbmuxd in its request/reply phase.
type muxConn struct {
	c    *Client
	conn net.Conn
	tag  uint32
}

func (c *Client) dialMux(ctx context.Context) (*muxConn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	conn, err := c.dialer.DialContext(dctx, c.cfg.Addr.Network, c.cfg.Addr.Address)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("usbmuxd at %s: %w", c.cfg.Addr, err)
		}
		return nil, c.unavailable(err)
	}
	return &muxConn{c: c, conn: conn}, nil
}

func (m *muxConn) Close() error { return m.conn.Close() }

// muxMessage is any plist usbmuxd sends: a reply or a pushed event. Every
// field is optional on the wire; the callers check what they need.
type muxMessage struct {
	MessageType    string         `plist:"MessageType"`
	Number         uint64         `plist:"Number"`
	DeviceID       uint64         `plist:"DeviceID"`
	Properties     *muxProperties `plist:"Properties"`
	DeviceList     []muxMessage   `plist:"DeviceList"`
	BUID           string         `plist:"BUID"`
	PairRecordData []byte         `plist:"PairRecordData"`
}

type muxProperties struct {
	ConnectionSpeed uint64 `plist:"ConnectionSpeed"`
	ConnectionType  string `plist:"ConnectionType"`
	DeviceID        uint64 `plist:"DeviceID"`
	LocationID      uint64 `plist:"LocationID"`
	ProductID       uint64 `plist:"ProductID"`
	SerialNumber    string `plist:"SerialNumber"`
}

// decodeMuxPacket checks a usbmux header and decodes its plist.
func decodeMuxPacket(h wire.MuxHeader, payload []byte) (muxMessage, error) {
	if h.Version != wire.MuxVersionPlist || h.Message != wire.MuxMessagePlist {
		return muxMessage{}, protocolError("usbmuxd sent a packet of version %d, type %d; only plist packets (1, 8) are spoken", h.Version, h.Message)
	}
	var m muxMessage
	if err := wire.Decode(payload, &m); err != nil {
		return muxMessage{}, protocolError("usbmuxd message: %w", err)
	}
	return m, nil
}

// request sends one request and reads its reply. Replies echo the tag;
// a reply to another tag means the stream is out of step.
func (m *muxConn) request(ctx context.Context, msgType string, fields map[string]any) (muxMessage, error) {
	defer bindDeadline(ctx, m.conn, m.c.cfg.Timeout)()
	req := map[string]any{
		"MessageType":         msgType,
		"ClientVersionString": "backupd",
		"ProgName":            m.c.cfg.Label,
		"BundleID":            "org.backupd",
		"kLibUSBMuxVersion":   3,
	}
	for k, v := range fields {
		req[k] = v
	}
	payload, err := wire.Encode(req, wire.XML)
	if err != nil {
		return muxMessage{}, fmt.Errorf("usbmuxd %s: %w", msgType, err)
	}
	m.tag++
	if err := wire.WriteMuxPacket(m.conn, wire.MuxVersionPlist, wire.MuxMessagePlist, m.tag, payload); err != nil {
		return muxMessage{}, ioFailure(ctx, cause.UsbmuxdUnavailable, "usbmuxd "+msgType, err)
	}
	h, body, err := wire.ReadMuxPacket(m.conn, wire.MaxMuxPayload)
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) || errors.Is(err, wire.ErrMalformed) {
			return muxMessage{}, protocolError("usbmuxd %s reply: %w", msgType, err)
		}
		return muxMessage{}, ioFailure(ctx, cause.UsbmuxdUnavailable, "usbmuxd "+msgType, err)
	}
	if h.Tag != m.tag {
		return muxMessage{}, protocolError("usbmuxd %s: reply tagged %d to request %d", msgType, h.Tag, m.tag)
	}
	reply, err := decodeMuxPacket(h, body)
	if err != nil {
		return muxMessage{}, fmt.Errorf("usbmuxd %s: %w", msgType, err)
	}
	return reply, nil
}

// result checks a reply that must be a Result.
func result(msgType string, reply muxMessage) error {
	if reply.MessageType != "Result" {
		return protocolError("usbmuxd %s: answered %q, want a Result", msgType, reply.MessageType)
	}
	if reply.Number != muxResultOK {
		return &MuxResultError{Request: msgType, Number: reply.Number}
	}
	return nil
}

// deviceFromMessage reads one Attached message (pushed, or an entry of
// ListDevices). Everything that ends up in a file name or a log is checked.
// An entry that is well formed but not a phone we can use (see OddEntry)
// is an *OddEntry error, for the caller to skip.
func deviceFromMessage(m muxMessage) (Device, error) {
	if m.Properties == nil {
		return Device{}, protocolError("usbmuxd %s without Properties", m.MessageType)
	}
	p := m.Properties
	id := m.DeviceID
	if id == 0 {
		id = p.DeviceID
	}
	if id == 0 || id > math.MaxUint32 {
		return Device{}, protocolError("usbmuxd %s: DeviceID %d out of range", m.MessageType, id)
	}
	if p.DeviceID != 0 && p.DeviceID != id {
		return Device{}, protocolError("usbmuxd %s: DeviceID %d, but %d in its Properties", m.MessageType, id, p.DeviceID)
	}
	if err := checkUDID(p.SerialNumber); err != nil {
		return Device{}, newOddEntry(id, p, err)
	}
	switch p.ConnectionType {
	case ConnUSB, ConnNetwork:
	default:
		return Device{}, newOddEntry(id, p, fmt.Errorf("connection type %.40q is neither USB nor Network", p.ConnectionType))
	}
	return Device{
		UDID:       spellSerial(p.SerialNumber),
		DeviceID:   uint32(id),
		ConnType:   p.ConnectionType,
		Speed:      p.ConnectionSpeed,
		LocationID: p.LocationID,
		ProductID:  p.ProductID,
	}, nil
}

// spellSerial gives a phone's UDID from usbmuxd's SerialNumber. The USB
// serial of a phone since the iPhone XS is its UDID without the '-'
// (24 hex digits); usbmuxd since 1.1.1 puts the '-' back after the 8th
// digit, and libusbmuxd does it for older daemons, so pair records,
// idevicepair and Finder all name the phone 8-16. backupd does the same,
// or an older usbmuxd would make it look for a pair record nobody wrote
// and back the phone up into a folder no other tool knows. The case is
// kept: usbmuxd names the pair record in the spelling it reports.
func spellSerial(s string) string {
	if len(s) != 24 {
		return s
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return s
		}
	}
	return s[:8] + "-" + s[8:]
}

// checkUDID accepts the UDID forms Apple uses (40 hex digits, or
// 8 hex - 16 hex since the iPhone XS) and anything else made of letters,
// digits and '-' up to 64 characters. The UDID names the backup's
// directory, so a usbmuxd that sent "../x" must not get that far.
func checkUDID(u string) error {
	if u == "" {
		return errors.New("empty UDID")
	}
	if len(u) > 64 {
		return fmt.Errorf("UDID of %d characters", len(u))
	}
	for i := 0; i < len(u); i++ {
		ch := u[i]
		ok := ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch == '-'
		if !ok {
			return fmt.Errorf("UDID %q has a character other than letters, digits and '-'", u)
		}
	}
	return nil
}

// decodeDeviceList reads a ListDevices reply. Odd entries are skipped and
// returned apart; the phones beside them are kept.
func decodeDeviceList(reply muxMessage) ([]Device, []*OddEntry, error) {
	if reply.MessageType == "Result" {
		return nil, nil, result("ListDevices", reply)
	}
	if reply.DeviceList == nil {
		return nil, nil, protocolError("usbmuxd ListDevices: reply without DeviceList")
	}
	devs := make([]Device, 0, len(reply.DeviceList))
	var odd []*OddEntry
	seen := map[uint32]bool{}
	for _, e := range reply.DeviceList {
		d, err := deviceFromMessage(e)
		var oe *OddEntry
		if errors.As(err, &oe) {
			odd = append(odd, oe)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("usbmuxd ListDevices: %w", err)
		}
		if seen[d.DeviceID] {
			return nil, nil, protocolError("usbmuxd ListDevices: DeviceID %d listed twice", d.DeviceID)
		}
		seen[d.DeviceID] = true
		devs = append(devs, d)
	}
	return devs, odd, nil
}

// ListDevices returns the devices usbmuxd has now. Ours, over wire: the
// watcher reconciles against this list, and go-ios's ListDevices answers
// an empty one, no error, for garbage or a refusal, which would detach
// every device; it also cannot tell a missing DeviceList from an empty one.
func (c *Client) ListDevices(ctx context.Context) ([]Device, error) {
	m, err := c.dialMux(ctx)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	reply, err := m.request(ctx, "ListDevices", nil)
	if err != nil {
		return nil, err
	}
	devs, odd, err := decodeDeviceList(reply)
	for _, e := range odd {
		c.noteOdd(ctx, e)
	}
	return devs, err
}

// ReadBUID returns the host's system BUID, which usbmuxd keeps and every
// pair record and lockdown session names. go-ios sends the request; it
// answers "" with no error for a refusal or garbage, so the reply is
// judged on our decode and an empty BUID is an error.
func (c *Client) ReadBUID(ctx context.Context) (string, error) {
	x, err := c.dialGoIOS(ctx)
	if err != nil {
		return "", err
	}
	defer x.Close()
	var buid string
	var gerr error
	reply, err := x.exchange(ctx, "ReadBUID", nil, func(u *ios.UsbMuxConnection) {
		buid, gerr = u.ReadBuid()
	})
	if err != nil {
		return "", err
	}
	if reply.MessageType == "Result" {
		if err := result("ReadBUID", reply); err != nil {
			return "", err
		}
		return "", protocolError("usbmuxd ReadBUID: Result 0 without a BUID")
	}
	if gerr != nil {
		return "", disagree("ReadBUID", gerr)
	}
	if buid == "" {
		return "", protocolError("usbmuxd ReadBUID: reply without BUID")
	}
	if buid != reply.BUID {
		return "", protocolError("usbmuxd ReadBUID: go-ios read BUID %.64q, our decoder %.64q", buid, reply.BUID)
	}
	return buid, nil
}

// ErrNoPairRecord is wrapped when usbmuxd holds no pair record for a
// device: this host has not paired with it (cause not_paired).
var ErrNoPairRecord = errors.New("no pair record for this device")

// ReadPairRecord returns the pair record usbmuxd holds for udid. Without
// one, the error wraps ErrNoPairRecord (cause not_paired); a record that
// does not decode or lacks what a session needs is pairing_invalid.
//
// go-ios sends the request and decodes the record. It reports a missing
// record as a plain string and answers an empty record for one that does
// not decode, without limits on the plist, so the guard decodes the record
// first (vetPairRecordReply), the Result number comes from our decode,
// and go-ios's record must pass the same check as DecodePairRecord's.
func (c *Client) ReadPairRecord(ctx context.Context, udid string) (*PairRecord, error) {
	if err := checkUDID(udid); err != nil {
		return nil, fmt.Errorf("read pair record: %w", err)
	}
	x, err := c.dialGoIOS(ctx)
	if err != nil {
		return nil, err
	}
	defer x.Close()
	var grec ios.PairRecord
	var gerr error
	reply, err := x.exchange(ctx, "ReadPairRecord", vetPairRecordReply, func(u *ios.UsbMuxConnection) {
		grec, gerr = u.ReadPair(udid)
	})
	if err != nil {
		return nil, fmt.Errorf("read pair record of %s: %w", udid, err)
	}
	if reply.MessageType == "Result" {
		err := result("ReadPairRecord", reply)
		if err == nil {
			return nil, protocolError("usbmuxd ReadPairRecord %s: Result 0 without a record", udid)
		}
		// usbmuxd answers ENOENT (2) for a missing record; Apple's and
		// the simulator answer BadDevice, which is also 2.
		if reply.Number == muxResultBadDevice {
			return nil, cause.New(cause.NotPaired, fmt.Errorf("usbmuxd ReadPairRecord %s: %w", udid, ErrNoPairRecord))
		}
		return nil, err
	}
	if len(reply.PairRecordData) == 0 {
		return nil, protocolError("usbmuxd ReadPairRecord %s: reply without PairRecordData", udid)
	}
	if gerr != nil {
		return nil, disagree("ReadPairRecord", gerr)
	}
	if reflect.ValueOf(grec).IsZero() {
		return nil, fmt.Errorf("usbmuxd ReadPairRecord %s: %w", udid, invalidRecord("go-ios decoded it as empty"))
	}
	rec := pairRecordFromGoIOS(grec)
	if err := rec.check(); err != nil {
		return nil, fmt.Errorf("usbmuxd ReadPairRecord %s: %w", udid, err)
	}
	return rec, nil
}

// SavePairRecord stores rec for udid in usbmuxd. deviceID, when not 0,
// lets usbmuxd tell its listeners the device is now paired. Ours, over
// wire: go-ios's savePair is unexported.
func (c *Client) SavePairRecord(ctx context.Context, udid string, deviceID uint32, rec *PairRecord) error {
	if err := checkUDID(udid); err != nil {
		return fmt.Errorf("save pair record: %w", err)
	}
	data, err := rec.Marshal()
	if err != nil {
		return fmt.Errorf("save pair record for %s: %w", udid, err)
	}
	m, err := c.dialMux(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	fields := map[string]any{"PairRecordID": udid, "PairRecordData": data}
	if deviceID != 0 {
		fields["DeviceID"] = uint64(deviceID)
	}
	reply, err := m.request(ctx, "SavePairRecord", fields)
	if err != nil {
		return err
	}
	return result("SavePairRecord", reply)
}

// DeletePairRecord removes the pair record usbmuxd holds for udid. Ours,
// over wire: go-ios has no DeletePairRecord.
func (c *Client) DeletePairRecord(ctx context.Context, udid string) error {
	if err := checkUDID(udid); err != nil {
		return fmt.Errorf("delete pair record: %w", err)
	}
	m, err := c.dialMux(ctx)
	if err != nil {
		return err
	}
	defer m.Close()
	reply, err := m.request(ctx, "DeletePairRecord", map[string]any{"PairRecordID": udid})
	if err != nil {
		return err
	}
	return result("DeletePairRecord", reply)
}

// Connect opens a connection to a TCP port on the device. The returned
// conn is a raw pipe to that port, with no deadline set.
//
// go-ios sends Connect and reads the Result. It ignores a failed send,
// takes garbage for success and puts the Result number in a string, so the
// verdict is result's on our decode. The pipe returned is our own
// net.Conn: go-ios's DeviceConnection is released, not closed or used.
func (c *Client) Connect(ctx context.Context, deviceID uint32, port uint16) (net.Conn, error) {
	if deviceID == 0 || port == 0 {
		return nil, fmt.Errorf("usbmuxd Connect: device %d port %d: both must be set", deviceID, port)
	}
	x, err := c.dialGoIOS(ctx)
	if err != nil {
		return nil, err
	}
	var gerr error
	// go-ios swaps the port to network byte order itself.
	reply, err := x.exchange(ctx, "Connect", nil, func(u *ios.UsbMuxConnection) {
		gerr = u.Connect(int(deviceID), port)
	})
	if err == nil {
		err = result("Connect", reply)
	}
	if err == nil && gerr != nil {
		err = disagree("Connect", gerr)
	}
	if err == nil && len(x.guard.buf) != 0 {
		err = protocolError("usbmuxd Connect: go-ios left %d bytes of the reply unread", len(x.guard.buf))
	}
	if err != nil {
		x.Close()
		return nil, fmt.Errorf("connect to port %d of device %d: %w", port, deviceID, err)
	}
	x.u.ReleaseDeviceConnection()
	return x.conn, nil
}
