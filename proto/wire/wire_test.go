package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestDecodeRefusesHostilePlists(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not a plist", []byte("hello")},
		{"exploding binary", explodingBinaryPlist(40)},
		{"self reference", selfRefBinaryPlist()},
		{"truncated xml", []byte(`<?xml version="1.0"?><plist><dict><key>a</key>`)},
	}
	for _, tc := range cases {
		var v any
		if err := Decode(tc.in, &v); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Decode = %v, want ErrMalformed", tc.name, err)
		}
	}
}

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	if err := WritePlist(&b, map[string]any{"Request": "QueryType"}, XML); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := ReadPlist(bytes.NewReader(b.Bytes()), MaxFrame, &m); err != nil || m["Request"] != "QueryType" {
		t.Fatalf("round trip: %v %v", err, m)
	}
	cases := []struct {
		name string
		in   []byte
		max  uint32
		want error
	}{
		{"clean end between frames", nil, 100, io.EOF},
		{"length, no body", []byte{0, 0, 0, 5}, 100, io.ErrUnexpectedEOF},
		{"short length", []byte{0, 0}, 100, io.ErrUnexpectedEOF},
		{"over the limit", []byte{0xff, 0xff, 0xff, 0xff}, 100, ErrTooLarge},
	}
	for _, tc := range cases {
		if _, err := ReadFrame(bytes.NewReader(tc.in), tc.max); !errors.Is(err, tc.want) {
			t.Errorf("%s: ReadFrame = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, _, err := ReadMuxPacket(bytes.NewReader([]byte{15, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0}), 100); !errors.Is(err, ErrMalformed) {
		t.Errorf("mux length under the header: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`<?xml version="1.0"?><plist><dict><key>MessageType</key><string>Listen</string></dict></plist>`))
	f.Add(deepBinaryPlist(10))
	f.Add(explodingBinaryPlist(12))
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if err := Decode(data, &v); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
	})
}

func FuzzReadMuxPacket(f *testing.F) {
	var b bytes.Buffer
	_ = WriteMuxPacket(&b, MuxVersionPlist, MuxMessagePlist, 1, []byte("<plist/>"))
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		h, p, err := ReadMuxPacket(bytes.NewReader(data), 1<<16)
		if err == nil && int(h.Length) != 16+len(p) {
			t.Fatalf("length %d, payload %d", h.Length, len(p))
		}
	})
}
