package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadFrames reads a byte stream as lockdown and DeviceLink do: 4-byte
// big-endian length-prefixed frames, one after another, each decoded as a
// plist. Every frame read is exactly what its length said and writes back
// to the same bytes; the stream ends cleanly (io.EOF) only on a frame
// boundary, and every other failure is one of the framing errors.
func FuzzReadFrames(f *testing.F) {
	var two bytes.Buffer
	_ = WritePlist(&two, map[string]any{"Request": "QueryType"}, XML)
	_ = WritePlist(&two, map[string]any{"Request": "GetValue", "Value": []byte{1, 2}}, Binary)
	f.Add(two.Bytes(), uint16(1024))
	f.Add(two.Bytes()[:7], uint16(1024))
	f.Add([]byte{0, 0, 0, 0}, uint16(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1}, uint16(100))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		max := uint32(limit)
		r := bytes.NewReader(data)
		var again bytes.Buffer
		for {
			before := r.Len()
			frame, err := ReadFrame(r, max)
			if err != nil {
				switch {
				case errors.Is(err, io.EOF):
					if before != 0 {
						t.Fatalf("io.EOF with %d bytes left unread", before)
					}
				case errors.Is(err, io.ErrUnexpectedEOF):
					if before == 0 {
						t.Fatal("io.ErrUnexpectedEOF on a frame boundary")
					}
				case errors.Is(err, ErrTooLarge):
				default:
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if uint32(len(frame)) > max {
				t.Fatalf("frame of %d bytes over the limit %d", len(frame), max)
			}
			if err := WriteFrame(&again, frame); err != nil {
				t.Fatal(err)
			}
			consumed := len(data) - r.Len()
			if !bytes.Equal(again.Bytes(), data[:consumed]) {
				t.Fatalf("frames written back differ from the %d bytes read", consumed)
			}
			// The same frame through ReadPlist: decoded or ErrMalformed.
			var v any
			if err := ReadPlist(bytes.NewReader(again.Bytes()[again.Len()-4-len(frame):]), max, &v); err != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("ReadPlist of a whole frame: %v", err)
			}
		}
	})
}
