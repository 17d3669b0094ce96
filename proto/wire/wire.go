// Package wire encodes and decodes the frames that usbmuxd, lockdownd and
// the lockdown services speak: the 16-byte usbmux header with its XML
// plist, and the 4-byte big-endian length prefix in front of a plist.
// Every decoder has a size limit and turns malformed input into an error.
package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"howett.net/plist"
)

// Limits on what a peer may make us allocate.
const (
	// MaxMuxPayload bounds one usbmux plist. Pair records are the largest
	// real ones, at a few KiB.
	MaxMuxPayload = 1 << 20
	// MaxFrame is the default bound on one length-prefixed plist.
	MaxFrame = 32 << 20
)

// usbmux protocol numbers.
const (
	MuxVersionPlist = 1
	MuxMessagePlist = 8
	muxHeaderSize   = 16
)

// ErrTooLarge is returned when a peer announces a frame over the limit.
var ErrTooLarge = errors.New("frame too large")

// ErrMalformed is wrapped by every decoding error of a well-framed but bad
// message.
var ErrMalformed = errors.New("malformed message")

// MuxHeader is the usbmux packet header. Length includes the header.
type MuxHeader struct {
	Length  uint32
	Version uint32
	Message uint32
	Tag     uint32
}

// ReadMuxPacket reads one usbmux packet, refusing payloads over max bytes.
func ReadMuxPacket(r io.Reader, max int) (MuxHeader, []byte, error) {
	var buf [muxHeaderSize]byte
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return MuxHeader{}, nil, err
	}
	h := MuxHeader{
		Length:  binary.LittleEndian.Uint32(buf[0:]),
		Version: binary.LittleEndian.Uint32(buf[4:]),
		Message: binary.LittleEndian.Uint32(buf[8:]),
		Tag:     binary.LittleEndian.Uint32(buf[12:]),
	}
	if h.Length < muxHeaderSize {
		return h, nil, fmt.Errorf("usbmux: length %d shorter than the header: %w", h.Length, ErrMalformed)
	}
	n := h.Length - muxHeaderSize
	if uint64(n) > uint64(max) {
		return h, nil, fmt.Errorf("usbmux: payload of %d bytes (limit %d): %w", n, max, ErrTooLarge)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return h, nil, fmt.Errorf("usbmux: truncated payload: %w", err)
	}
	return h, payload, nil
}

// WriteMuxPacket writes one usbmux packet in a single write, so concurrent
// writers under a lock never interleave.
func WriteMuxPacket(w io.Writer, version, message, tag uint32, payload []byte) error {
	buf := make([]byte, muxHeaderSize+len(payload))
	binary.LittleEndian.PutUint32(buf[0:], uint32(len(buf)))
	binary.LittleEndian.PutUint32(buf[4:], version)
	binary.LittleEndian.PutUint32(buf[8:], message)
	binary.LittleEndian.PutUint32(buf[12:], tag)
	copy(buf[muxHeaderSize:], payload)
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one 4-byte big-endian length-prefixed frame of at most
// max bytes.
func ReadFrame(r io.Reader, max uint32) ([]byte, error) {
	var lb [4]byte
	if _, err := io.ReadFull(r, lb[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n > max {
		return nil, fmt.Errorf("frame of %d bytes (limit %d): %w", n, max, ErrTooLarge)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			// Only an EOF between frames is clean.
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("truncated frame: %w", err)
	}
	return buf, nil
}

// WriteFrame writes payload behind its 4-byte big-endian length.
func WriteFrame(w io.Writer, payload []byte) error {
	buf := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint32(buf, uint32(len(payload)))
	copy(buf[4:], payload)
	_, err := w.Write(buf)
	return err
}

// Format selects a plist encoding.
type Format int

// The plist encodings on the wire.
const (
	XML Format = iota
	Binary
)

// Encode marshals v as a plist. A binary plist of the types a plist
// decodes to is written by BplistBuilder; anything else (a struct, a
// plist.UID) goes through the plist library.
func Encode(v any, f Format) (out []byte, err error) {
	if f == Binary {
		var b BplistBuilder
		out, err := b.Encode(nil, v)
		if !errors.Is(err, ErrUnsupported) {
			return out, err
		}
	}
	// howett.net/plist panics on some Go values; never let that escape.
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("plist encode: %v", r)
		}
	}()
	pf := plist.XMLFormat
	if f == Binary {
		pf = plist.BinaryFormat
	}
	return plist.Marshal(v, pf)
}

// Decode unmarshals an XML or binary plist into v. Any failure, including
// a panic inside the plist library, is an error wrapping ErrMalformed.
func Decode(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plist decode: %v: %w", r, ErrMalformed)
		}
	}()
	if len(data) == 0 {
		return fmt.Errorf("empty plist: %w", ErrMalformed)
	}
	// A few hundred hostile bytes can otherwise make the plist library
	// recurse or expand without bound.
	if err := checkPlist(data); err != nil {
		return err
	}
	if _, err := plist.Unmarshal(data, v); err != nil {
		return fmt.Errorf("plist decode: %v: %w", err, ErrMalformed)
	}
	return nil
}

// IsBinary reports whether data is a binary plist.
func IsBinary(data []byte) bool { return bytes.HasPrefix(data, []byte("bplist00")) }

// ReadPlist reads one length-prefixed plist of at most max bytes into v.
func ReadPlist(r io.Reader, max uint32, v any) error {
	b, err := ReadFrame(r, max)
	if err != nil {
		return err
	}
	return Decode(b, v)
}

// WritePlist writes v as one length-prefixed plist.
func WritePlist(w io.Writer, v any, f Format) error {
	b, err := Encode(v, f)
	if err != nil {
		return err
	}
	return WriteFrame(w, b)
}
