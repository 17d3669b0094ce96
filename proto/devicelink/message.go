package devicelink

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"

	"github.com/backupd/backupd/proto/wire"
)

// ErrProtocol is wrapped by every error caused by a peer breaking the
// protocol: malformed plists, unexpected messages, oversized frames, blocks
// or names, and bad file framing. I/O errors (io.EOF, a closed connection)
// are returned as they are, so callers can tell a hostile or confused peer
// from a pulled cable.
var ErrProtocol = errors.New("devicelink: protocol error")

// ErrUnsupportedVersion is returned by the version exchange when the peer
// announces a DeviceLink version we do not speak.
var ErrUnsupportedVersion = errors.New("devicelink: unsupported version")

// EmptyParameter stands in for an absent string or payload in
// DLMessageStatusResponse and DLMessageDisconnect.
const EmptyParameter = "___EmptyParameterString___"

// DeviceLink message names.
const (
	MsgVersionExchange  = "DLMessageVersionExchange"
	MsgVersionsOk       = "DLVersionsOk"
	MsgDeviceReady      = "DLMessageDeviceReady"
	MsgProcessMessage   = "DLMessageProcessMessage"
	MsgStatusResponse   = "DLMessageStatusResponse"
	MsgDisconnect       = "DLMessageDisconnect"
	MsgPing             = "DLMessagePing"
	MsgDownloadFiles    = "DLMessageDownloadFiles"
	MsgUploadFiles      = "DLMessageUploadFiles"
	MsgGetFreeDiskSpace = "DLMessageGetFreeDiskSpace"
	MsgContentsOfDir    = "DLContentsOfDirectory"
	MsgCreateDirectory  = "DLMessageCreateDirectory"
	MsgMoveItems        = "DLMessageMoveItems"
	MsgMoveFiles        = "DLMessageMoveFiles"
	MsgRemoveItems      = "DLMessageRemoveItems"
	MsgRemoveFiles      = "DLMessageRemoveFiles"
	MsgCopyItem         = "DLMessageCopyItem"
	MsgPurgeDiskSpace   = "DLMessagePurgeDiskSpace"
)

// KeyMessageName is the key naming a mobilebackup2 message inside a
// DLMessageProcessMessage dictionary.
const KeyMessageName = "MessageName"

// Defaults for the limits in Conn.
const (
	// DefaultMaxMessage bounds one incoming plist message. A MoveItems
	// dictionary for a large backup is the biggest real one, at a few MiB.
	DefaultMaxMessage = wire.MaxFrame
	// DefaultMaxBlock bounds one incoming file data block. Real peers use
	// 32 KiB (libimobiledevice) up to a few hundred KiB (iOS).
	DefaultMaxBlock = 4 << 20
	// MaxName is the longest file name either side may send; longer names
	// abort the transfer, as they do in libimobiledevice.
	MaxName = 4096
	// maxErrorMessage bounds the text of an error block.
	maxErrorMessage = 64 << 10
	// maxEmptyBlocks bounds a run of data blocks without content.
	maxEmptyBlocks = 64
)

// Conn is one DeviceLink connection. It is not safe for concurrent use:
// DeviceLink is strictly request/response, so one goroutine drives it.
//
// Conn buffers reads, so after NewConn every read of the underlying stream
// must go through the Conn (messages and file streams alike). Writes are
// not buffered except inside the file writers, which flush on Finish.
type Conn struct {
	r *bufio.Reader
	w io.Writer

	// MaxMessage bounds one incoming message; zero means DefaultMaxMessage.
	MaxMessage uint32
	// MaxBlock bounds one incoming file data block; zero means
	// DefaultMaxBlock.
	MaxBlock uint32
	// Format of outgoing plists. DeviceLink peers send binary; XML is
	// accepted on input either way.
	Format wire.Format

	// bp and out are kept from one binary message to the next: a backup
	// answers hundreds of listings, each thousands of objects. wmu
	// guards them: messages may be written from more than one goroutine
	// in turn, as they could before the encoder was kept.
	wmu sync.Mutex
	bp  wire.BplistBuilder
	out []byte
}

// keepEncoder bounds the memory a Conn keeps for its next message.
const keepEncoder = 1 << 20

// NewConn wraps rw.
func NewConn(rw io.ReadWriter) *Conn {
	return &Conn{r: bufio.NewReaderSize(rw, 64<<10), w: rw, Format: wire.Binary}
}

func (c *Conn) maxMessage() uint32 {
	if c.MaxMessage == 0 {
		return DefaultMaxMessage
	}
	return c.MaxMessage
}

func (c *Conn) maxBlock() uint32 {
	if c.MaxBlock == 0 {
		return DefaultMaxBlock
	}
	return c.MaxBlock
}

// Writer is the underlying writer, for callers that must write raw bytes
// (the simulator's hostile modes do).
func (c *Conn) Writer() io.Writer { return c.w }

// WaitReadable blocks until the peer has sent at least one byte, without
// consuming it, or reading fails. A device uses it to notice a hang-up
// while it deliberately keeps the host waiting.
func (c *Conn) WaitReadable() error {
	_, err := c.r.Peek(1)
	return err
}

// ReadMessage reads one DeviceLink message and returns its name and the
// whole array (element 0 is the name). io.EOF means the peer closed the
// connection cleanly between messages.
func (c *Conn) ReadMessage() (string, []any, error) {
	data, err := wire.ReadFrame(c.r, c.maxMessage())
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) {
			return "", nil, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if err != io.EOF && errors.Is(err, io.EOF) {
			// The length arrived but the body did not: only an EOF
			// between messages is clean.
			return "", nil, fmt.Errorf("devicelink: %w", io.ErrUnexpectedEOF)
		}
		return "", nil, err
	}
	return DecodeMessage(data)
}

// DecodeMessage decodes one framed message body (without its length).
func DecodeMessage(data []byte) (string, []any, error) {
	if name, msg, ok := decodeMoves(data); ok {
		return name, msg, nil
	}
	var v any
	if err := wire.Decode(data, &v); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return "", nil, fmt.Errorf("%w: message is %T, not a non-empty array", ErrProtocol, v)
	}
	name, ok := arr[0].(string)
	if !ok || !strings.HasPrefix(name, "DL") {
		return "", nil, fmt.Errorf("%w: message does not start with a DL* name", ErrProtocol)
	}
	return name, arr, nil
}

// WriteMessage writes the message [name, args...].
func (c *Conn) WriteMessage(name string, args ...any) error {
	msg := make([]any, 0, 1+len(args))
	msg = append(msg, name)
	msg = append(msg, args...)
	return c.WriteRaw(msg)
}

// WriteRaw writes v, which should be a DeviceLink array, as one message.
func (c *Conn) WriteRaw(v any) error {
	if c.Format == wire.Binary {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		out, err := c.bp.Encode(append(c.out[:0], 0, 0, 0, 0), v)
		if err == nil {
			return c.writeEncoded(out)
		}
		if !errors.Is(err, wire.ErrUnsupported) {
			return fmt.Errorf("devicelink: encode: %w", err)
		}
	}
	b, err := wire.Encode(v, c.Format)
	if err != nil {
		return fmt.Errorf("devicelink: encode: %w", err)
	}
	if uint64(len(b)) > math.MaxUint32 {
		return fmt.Errorf("devicelink: message of %d bytes does not fit a frame", len(b))
	}
	return wire.WriteFrame(c.w, b)
}

// writeEncoded writes a frame whose first 4 bytes are left for its
// length.
func (c *Conn) writeEncoded(out []byte) error {
	n := len(out) - 4
	if uint64(n) > math.MaxUint32 {
		return fmt.Errorf("devicelink: message of %d bytes does not fit a frame", n)
	}
	binary.BigEndian.PutUint32(out, uint32(n))
	_, err := c.w.Write(out)
	if cap(out) > keepEncoder {
		c.bp, out = wire.BplistBuilder{}, nil
	}
	c.out = out
	return err
}

// ExpectMessage reads one message and fails with ErrProtocol unless it is
// named want.
func (c *Conn) ExpectMessage(want string) ([]any, error) {
	name, msg, err := c.ReadMessage()
	if err != nil {
		return nil, err
	}
	if name != want {
		return nil, fmt.Errorf("%w: got %s, want %s", ErrProtocol, name, want)
	}
	return msg, nil
}

// Disconnect sends DLMessageDisconnect with an optional reason.
func (c *Conn) Disconnect(reason string) error {
	if reason == "" {
		reason = EmptyParameter
	}
	return c.WriteMessage(MsgDisconnect, reason)
}

// SendProcessMessage sends ["DLMessageProcessMessage", dict].
func (c *Conn) SendProcessMessage(dict map[string]any) error {
	if dict == nil {
		dict = map[string]any{}
	}
	return c.WriteMessage(MsgProcessMessage, dict)
}

// ReadProcessMessage reads a message that must be
// ["DLMessageProcessMessage", dict] and returns the dict.
func (c *Conn) ReadProcessMessage() (map[string]any, error) {
	msg, err := c.ExpectMessage(MsgProcessMessage)
	if err != nil {
		return nil, err
	}
	return ProcessMessageDict(msg)
}

// ProcessMessageDict extracts the dictionary of a DLMessageProcessMessage.
func ProcessMessageDict(msg []any) (map[string]any, error) {
	if len(msg) != 2 {
		return nil, fmt.Errorf("%w: DLMessageProcessMessage with %d elements", ErrProtocol, len(msg))
	}
	d, ok := msg[1].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: DLMessageProcessMessage carries %T, not a dictionary", ErrProtocol, msg[1])
	}
	return d, nil
}

// Arg returns element i of msg as a T, or an ErrProtocol error naming the
// message when it is missing or of another type.
func Arg[T any](msg []any, i int) (T, error) {
	var zero T
	if i < 0 || i >= len(msg) {
		return zero, fmt.Errorf("%w: %s has no element %d", ErrProtocol, msgName(msg), i)
	}
	v, ok := msg[i].(T)
	if !ok {
		return zero, fmt.Errorf("%w: %s element %d is %T, not %T", ErrProtocol, msgName(msg), i, msg[i], zero)
	}
	return v, nil
}

func msgName(msg []any) string {
	if len(msg) > 0 {
		if s, ok := msg[0].(string); ok {
			return s
		}
	}
	return "message"
}

// Strings converts a decoded plist array of strings.
func Strings(v any) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: %T is not an array", ErrProtocol, v)
	}
	out := make([]string, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%w: array element %d is %T, not a string", ErrProtocol, i, e)
		}
		out[i] = s
	}
	return out, nil
}
