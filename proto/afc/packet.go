package afc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Framing constants.
const (
	// Magic opens every AFC packet.
	Magic = "CFA6LPAA"
	// HeaderSize is the fixed header: magic and four little-endian u64s.
	HeaderSize = 40
	// DefaultMaxPacket bounds a whole packet, header included. It is well
	// above the largest packet either side sends in practice (a 64 KiB
	// read, a few-KiB plist written in one FileWrite) and low enough that a
	// hostile length cannot exhaust memory.
	DefaultMaxPacket = 8 << 20
)

// ErrMalformed is wrapped by every error about a packet that is framed
// wrongly: bad magic, lengths that contradict each other, arguments too
// short for their operation.
var ErrMalformed = errors.New("afc: malformed packet")

// ErrTooLarge is wrapped when a packet announces more than the limit.
var ErrTooLarge = errors.New("afc: packet too large")

// Header is the decoded fixed header. EntireLength and ThisLength both
// include the 40 header bytes; ThisLength also covers the header payload
// (the operation's arguments), EntireLength everything up to the next
// packet.
type Header struct {
	EntireLength uint64
	ThisLength   uint64
	PacketNum    uint64
	Op           Opcode
}

// Packet is one AFC packet. HeaderPayload carries an operation's fixed
// arguments (handle, mode, path, status code); Payload carries bulk data
// (what FileWrite writes, what a Data reply returns).
type Packet struct {
	Num           uint64
	Op            Opcode
	HeaderPayload []byte
	Payload       []byte
}

// ParseHeader decodes and checks a 40-byte header, refusing packets whose
// entire length exceeds max bytes (max <= 0 means DefaultMaxPacket).
func ParseHeader(b []byte, max int) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("header of %d bytes: %w", len(b), ErrMalformed)
	}
	if string(b[:8]) != Magic {
		return Header{}, fmt.Errorf("bad magic %q: %w", b[:8], ErrMalformed)
	}
	h := Header{
		EntireLength: binary.LittleEndian.Uint64(b[8:]),
		ThisLength:   binary.LittleEndian.Uint64(b[16:]),
		PacketNum:    binary.LittleEndian.Uint64(b[24:]),
		Op:           Opcode(binary.LittleEndian.Uint64(b[32:])),
	}
	if h.ThisLength < HeaderSize {
		return h, fmt.Errorf("this length %d shorter than the header: %w", h.ThisLength, ErrMalformed)
	}
	if h.EntireLength < h.ThisLength {
		return h, fmt.Errorf("entire length %d shorter than this length %d: %w", h.EntireLength, h.ThisLength, ErrMalformed)
	}
	if max <= 0 {
		max = DefaultMaxPacket
	}
	if h.EntireLength > uint64(max) {
		return h, fmt.Errorf("packet of %d bytes (limit %d): %w", h.EntireLength, max, ErrTooLarge)
	}
	return h, nil
}

// ReadPacket reads one packet of at most max bytes (max <= 0 means
// DefaultMaxPacket). A stream that ends cleanly before the packet starts
// gives io.EOF, so a server can tell a peer that hung up from one that cut
// a packet short (io.ErrUnexpectedEOF).
func ReadPacket(r io.Reader, max int) (Packet, error) {
	var hb [HeaderSize]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return Packet{}, io.EOF
		}
		return Packet{}, fmt.Errorf("afc header: %w", err)
	}
	h, err := ParseHeader(hb[:], max)
	if err != nil {
		return Packet{}, err
	}
	// ParseHeader bounded both lengths by max, so these fit in an int.
	body := make([]byte, int(h.EntireLength-HeaderSize))
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Packet{}, fmt.Errorf("afc %s packet body: %w", h.Op, err)
	}
	split := int(h.ThisLength - HeaderSize)
	return Packet{
		Num:           h.PacketNum,
		Op:            h.Op,
		HeaderPayload: body[:split:split],
		Payload:       body[split:],
	}, nil
}

// DecodePacket decodes one packet from the front of b and returns what
// follows it.
func DecodePacket(b []byte, max int) (Packet, []byte, error) {
	r := bytes.NewReader(b)
	p, err := ReadPacket(r, max)
	if err != nil {
		return Packet{}, nil, err
	}
	return p, b[len(b)-r.Len():], nil
}

// Encode returns the packet's wire form.
func (p Packet) Encode() []byte {
	this := HeaderSize + len(p.HeaderPayload)
	buf := make([]byte, this+len(p.Payload))
	copy(buf, Magic)
	binary.LittleEndian.PutUint64(buf[8:], uint64(len(buf)))
	binary.LittleEndian.PutUint64(buf[16:], uint64(this))
	binary.LittleEndian.PutUint64(buf[24:], p.Num)
	binary.LittleEndian.PutUint64(buf[32:], uint64(p.Op))
	copy(buf[HeaderSize:], p.HeaderPayload)
	copy(buf[this:], p.Payload)
	return buf
}

// WritePacket writes p in a single Write, so that writers sharing a
// connection under a lock never interleave halves of packets.
func WritePacket(w io.Writer, p Packet) error {
	if _, err := w.Write(p.Encode()); err != nil {
		return fmt.Errorf("afc write %s: %w", p.Op, err)
	}
	return nil
}

// StatusPacket is the reply carrying status st to request number num. The
// code goes in the header payload: libimobiledevice treats a reply with no
// bytes after the header as an I/O error unless it is a Data packet.
func StatusPacket(num uint64, st Status) Packet {
	return Packet{Num: num, Op: OpStatus, HeaderPayload: U64(uint64(st))}
}

// DataPacket is a Data reply to request num. Like a real device it puts
// the bytes in the payload, not the header payload.
func DataPacket(num uint64, data []byte) Packet {
	return Packet{Num: num, Op: OpData, Payload: data}
}

// Body returns the header payload and the payload together. Readers of
// replies should use it: libimobiledevice and real devices do not agree on
// which of the two carries a reply's bytes, and both treat them as one.
func (p Packet) Body() []byte {
	if len(p.Payload) == 0 {
		return p.HeaderPayload
	}
	if len(p.HeaderPayload) == 0 {
		return p.Payload
	}
	b := make([]byte, 0, len(p.HeaderPayload)+len(p.Payload))
	return append(append(b, p.HeaderPayload...), p.Payload...)
}
