package devicelink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/wire"
)

// frame prefixes body with its 4-byte big-endian length.
func frame(body []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(out, body...)
}

func mustEncode(t testing.TB, v any, f wire.Format) []byte {
	t.Helper()
	b, err := wire.Encode(v, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rw joins a reader and a writer into an io.ReadWriter.
type rw struct {
	io.Reader
	io.Writer
}

func TestReadMessage(t *testing.T) {
	bin := mustEncode(t, []any{"DLMessageProcessMessage", map[string]any{"MessageName": "Hello"}}, wire.Binary)
	xml := mustEncode(t, []any{"DLMessagePing", "hi"}, wire.XML)
	tests := []struct {
		name     string
		in       []byte
		max      uint32
		wantName string
		wantLen  int
		wantErr  error
	}{
		{name: "binary", in: frame(bin), wantName: MsgProcessMessage, wantLen: 2},
		{name: "xml", in: frame(xml), wantName: MsgPing, wantLen: 2},
		{name: "clean eof", in: nil, wantErr: io.EOF},
		{name: "truncated length", in: []byte{0, 0}, wantErr: io.ErrUnexpectedEOF},
		{name: "truncated body", in: frame(bin)[:10], wantErr: io.ErrUnexpectedEOF},
		{name: "zero length", in: []byte{0, 0, 0, 0}, wantErr: ErrProtocol},
		{name: "too large", in: []byte{0xFF, 0xFF, 0xFF, 0xFF}, wantErr: ErrProtocol},
		{name: "over custom max", in: frame(bin), max: 10, wantErr: ErrProtocol},
		{name: "garbage", in: frame([]byte("hello world")), wantErr: ErrProtocol},
		{name: "openstep text", in: frame([]byte(`("DLMessagePing")`)), wantErr: ErrProtocol},
		{name: "bad bplist", in: frame(append([]byte("bplist00"), make([]byte, 40)...)), wantErr: ErrProtocol},
		{name: "not an array", in: frame(mustEncode(t, map[string]any{"a": 1}, wire.Binary)), wantErr: ErrProtocol},
		{name: "empty array", in: frame(mustEncode(t, []any{}, wire.Binary)), wantErr: ErrProtocol},
		{name: "number first", in: frame(mustEncode(t, []any{1, 2}, wire.Binary)), wantErr: ErrProtocol},
		{name: "not DL", in: frame(mustEncode(t, []any{"Hello"}, wire.Binary)), wantErr: ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConn(rw{bytes.NewReader(tt.in), io.Discard})
			c.MaxMessage = tt.max
			name, msg, err := c.ReadMessage()
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if name != tt.wantName || len(msg) != tt.wantLen || msg[0] != tt.wantName {
				t.Fatalf("got %q %v", name, msg)
			}
		})
	}
}

func TestWriteMessageRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	c := NewConn(&buf)
	if err := c.WriteMessage(MsgUploadFiles, map[string]any{}, 12.5, uint64(1<<40)); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(buf.Bytes()[4:], []byte("bplist00")) {
		t.Fatalf("outgoing message is not a binary plist: %q", buf.Bytes()[:16])
	}
	name, msg, err := NewConn(&buf).ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if name != MsgUploadFiles || len(msg) != 4 {
		t.Fatalf("got %q %v", name, msg)
	}
	if p, ok := wire.Real(msg[2]); !ok || p != 12.5 {
		t.Errorf("progress = %v", msg[2])
	}
	if n, ok := wire.Uint(msg[3]); !ok || n != 1<<40 {
		t.Errorf("total = %v", msg[3])
	}
}

func TestVersionExchange(t *testing.T) {
	tests := []struct {
		name      string
		device    Version
		wantHost  error
		wantMajor uint64
	}{
		{"400", Version{400, 0}, nil, 400},
		{"300", Version{300, 0}, nil, 300},
		{"400 newer minor", Version{400, 2}, nil, 400},
		{"500", Version{500, 0}, ErrUnsupportedVersion, 0},
		{"100", Version{100, 0}, ErrUnsupportedVersion, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			deadline := time.Now().Add(5 * time.Second)
			a.SetDeadline(deadline)
			b.SetDeadline(deadline)
			devErr := make(chan error, 1)
			go func() { devErr <- NewConn(a).DeviceVersionExchange(tt.device) }()
			v, err := NewConn(b).HostVersionExchange()
			if !errors.Is(err, tt.wantHost) {
				t.Fatalf("host err = %v, want %v", err, tt.wantHost)
			}
			if err != nil {
				b.Close() // the device is waiting for an answer that never comes
				if derr := <-devErr; derr == nil {
					t.Fatal("device succeeded against a host that refused it")
				}
				return
			}
			if v.Major != tt.wantMajor {
				t.Errorf("host saw major %d", v.Major)
			}
			if err := <-devErr; err != nil {
				t.Fatalf("device: %v", err)
			}
		})
	}
}

func TestDeviceVersionExchangeRefused(t *testing.T) {
	var out bytes.Buffer
	in := frame(mustEncode(t, []any{MsgVersionExchange, "DLVersionsNotOk", 400}, wire.Binary))
	err := NewConn(rw{bytes.NewReader(in), &out}).DeviceVersionExchange(Version400())
	if !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("err = %v", err)
	}
	// Only the announcement went out; no DeviceReady.
	name, msg, err := NewConn(&out).ReadMessage()
	if err != nil || name != MsgVersionExchange || len(msg) != 3 {
		t.Fatalf("device sent %q %v %v", name, msg, err)
	}
	if _, _, err := NewConn(&out).ReadMessage(); err != io.EOF {
		t.Fatalf("device sent more after a refusal: %v", err)
	}
}

func TestStatusResponse(t *testing.T) {
	tests := []struct {
		name string
		msg  []any
		want StatusResponse
		err  bool
	}{
		{"ok empty", []any{MsgStatusResponse, uint64(0), EmptyParameter, EmptyParameter}, StatusResponse{}, false},
		// libimobiledevice sends negative codes as unsigned integers.
		{"multi status unsigned", []any{MsgStatusResponse, uint64(1<<64 - 13), "Multi status", map[string]any{}},
			StatusResponse{Code: -13, Description: "Multi status", Payload: map[string]any{}}, false},
		{"signed", []any{MsgStatusResponse, int64(-6), "No such file"}, StatusResponse{Code: -6, Description: "No such file"}, false},
		{"free space", []any{MsgStatusResponse, uint64(0), EmptyParameter, uint64(5000)}, StatusResponse{Payload: uint64(5000)}, false},
		{"too short", []any{MsgStatusResponse}, StatusResponse{}, true},
		{"string code", []any{MsgStatusResponse, "0"}, StatusResponse{}, true},
		{"number description", []any{MsgStatusResponse, uint64(0), uint64(1)}, StatusResponse{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStatusResponse(tt.msg)
			if (err != nil) != tt.err {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				if !errors.Is(err, ErrProtocol) {
					t.Fatalf("error %v does not wrap ErrProtocol", err)
				}
				return
			}
			if got.Code != tt.want.Code || got.Description != tt.want.Description {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if (got.Payload == nil) != (tt.want.Payload == nil) {
				t.Fatalf("payload %v, want %v", got.Payload, tt.want.Payload)
			}
		})
	}
}

func TestStatusResponseRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	c := NewConn(&buf)
	errs := map[string]FileError{"UDID/Status.plist": {Code: CodeNoEntry, Message: "No such file or directory"}}
	if err := c.SendStatusResponse(CodeMultiStatus, "Multi status", MultiStatus(errs)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendStatusResponse(0, "", nil); err != nil {
		t.Fatal(err)
	}
	r := NewConn(&buf)
	got, err := r.ReadStatusResponse()
	if err != nil {
		t.Fatal(err)
	}
	if got.Code != CodeMultiStatus {
		t.Fatalf("code %d", got.Code)
	}
	ms, err := ParseMultiStatus(got.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if ms["UDID/Status.plist"] != errs["UDID/Status.plist"] {
		t.Fatalf("multi status %+v", ms)
	}
	// The empty form travels as EmptyParameter both times.
	_, raw, err := r.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if raw[2] != EmptyParameter || raw[3] != EmptyParameter {
		t.Fatalf("empty status response = %v", raw)
	}
}

func TestProcessMessage(t *testing.T) {
	var buf bytes.Buffer
	c := NewConn(&buf)
	if err := c.SendProcessMessage(map[string]any{KeyMessageName: "Response", "ErrorCode": 0, "ProtocolVersion": 2.1}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(MsgProcessMessage, map[string]any{}, "extra"); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(MsgProcessMessage, "not a dict"); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(MsgPing, "x"); err != nil {
		t.Fatal(err)
	}
	r := NewConn(&buf)
	d, err := r.ReadProcessMessage()
	if err != nil {
		t.Fatal(err)
	}
	if d[KeyMessageName] != "Response" || d["ProtocolVersion"] != 2.1 {
		t.Fatalf("dict %v", d)
	}
	for i := 0; i < 3; i++ {
		if _, err := r.ReadProcessMessage(); !errors.Is(err, ErrProtocol) {
			t.Fatalf("bad message %d: err = %v", i, err)
		}
	}
}

func TestArgAndConversions(t *testing.T) {
	msg := []any{"DLMessageX", "s", uint64(3), int64(-2), 1.5}
	if s, err := Arg[string](msg, 1); err != nil || s != "s" {
		t.Fatalf("Arg string: %v %v", s, err)
	}
	if _, err := Arg[string](msg, 2); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Arg wrong type: %v", err)
	}
	if _, err := Arg[string](msg, 9); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Arg out of range: %v", err)
	}
	if v, ok := wire.Uint(msg[3]); ok {
		t.Fatalf("Uint of a negative number = %d", v)
	}
	if v, ok := wire.Int(msg[3]); !ok || v != -2 {
		t.Fatalf("Int = %d", v)
	}
	if v, ok := wire.Real(msg[2]); !ok || v != 3 {
		t.Fatalf("Real of an integer = %v", v)
	}
	if _, err := Strings([]any{"a", 1}); !errors.Is(err, ErrProtocol) {
		t.Fatalf("Strings: %v", err)
	}
	if s, err := Strings([]any{"a", "b"}); err != nil || len(s) != 2 {
		t.Fatalf("Strings: %v %v", s, err)
	}
}
