package afc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// rawHeader builds a header with arbitrary, possibly inconsistent, fields.
func rawHeader(magic string, entire, this, num, op uint64) []byte {
	b := make([]byte, HeaderSize)
	copy(b, magic)
	binary.LittleEndian.PutUint64(b[8:], entire)
	binary.LittleEndian.PutUint64(b[16:], this)
	binary.LittleEndian.PutUint64(b[24:], num)
	binary.LittleEndian.PutUint64(b[32:], op)
	return b
}

func TestReadPacket(t *testing.T) {
	open := Packet{Num: 7, Op: OpFileOpen, HeaderPayload: EncodeOpen(ModeReadWrite, SyncLockPath)}
	write := Packet{Num: 9, Op: OpFileWrite, HeaderPayload: U64(3), Payload: []byte("hello")}
	tests := []struct {
		name    string
		in      []byte
		max     int
		want    *Packet
		wantErr error
	}{
		{name: "open request", in: open.Encode(), want: &open},
		{name: "write with payload", in: write.Encode(), want: &write},
		{name: "bare header", in: rawHeader(Magic, 40, 40, 1, uint64(OpData)), want: &Packet{Num: 1, Op: OpData, HeaderPayload: []byte{}, Payload: []byte{}}},
		{name: "empty stream", in: nil, wantErr: io.EOF},
		{name: "short header", in: []byte("CFA6LPAA\x28"), wantErr: io.ErrUnexpectedEOF},
		{name: "bad magic", in: rawHeader("CFA6LPAB", 40, 40, 1, 1), wantErr: ErrMalformed},
		{name: "this below header", in: rawHeader(Magic, 40, 39, 1, 1), wantErr: ErrMalformed},
		{name: "entire below this", in: append(rawHeader(Magic, 44, 48, 1, 1), make([]byte, 8)...), wantErr: ErrMalformed},
		{name: "over the limit", in: rawHeader(Magic, 1<<40, 48, 1, 1), wantErr: ErrTooLarge},
		{name: "over a custom limit", in: write.Encode(), max: 50, wantErr: ErrTooLarge},
		{name: "max u64 length", in: rawHeader(Magic, ^uint64(0), ^uint64(0), 1, 1), wantErr: ErrTooLarge},
		{name: "truncated body", in: append(rawHeader(Magic, 60, 48, 1, 1), 1, 2, 3), wantErr: io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadPacket(bytes.NewReader(tc.in), tc.max)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Num != tc.want.Num || got.Op != tc.want.Op ||
				!bytes.Equal(got.HeaderPayload, tc.want.HeaderPayload) ||
				!bytes.Equal(got.Payload, tc.want.Payload) {
				t.Fatalf("got %+v, want %+v", got, *tc.want)
			}
		})
	}
}

func TestEncodeLayout(t *testing.T) {
	p := Packet{Num: 0x0102, Op: OpFileLock, HeaderPayload: EncodeHandleArg(5, uint64(LockExclusive)), Payload: []byte{0xAA}}
	b := p.Encode()
	want := append(rawHeader(Magic, 40+16+1, 40+16, 0x0102, 0x1B), EncodeHandleArg(5, 6)...)
	want = append(want, 0xAA)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoded\n% x\nwant\n% x", b, want)
	}
}

func TestDecodePacketRest(t *testing.T) {
	a := StatusPacket(1, StatusOpWouldBlock).Encode()
	b := DataPacket(2, []byte("x")).Encode()
	p, rest, err := DecodePacket(append(a, b...), 0)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := DecodeU64(p.Body()); p.Op != OpStatus || Status(st) != StatusOpWouldBlock {
		t.Fatalf("first packet %+v", p)
	}
	if !bytes.Equal(rest, b) {
		t.Fatalf("rest = % x, want % x", rest, b)
	}
}

func TestArgs(t *testing.T) {
	mode, path, err := DecodeOpen(EncodeOpen(ModeReadWrite, SyncLockPath))
	if err != nil || mode != ModeReadWrite || path != SyncLockPath {
		t.Fatalf("DecodeOpen = %v %q %v", mode, path, err)
	}
	if _, _, err := DecodeOpen([]byte{1, 2}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short open: %v", err)
	}
	h, v, err := DecodeHandleArg(EncodeHandleArg(3, uint64(LockUnlock)))
	if err != nil || h != 3 || LockOp(v) != LockUnlock {
		t.Fatalf("DecodeHandleArg = %d %d %v", h, v, err)
	}
	if _, _, err := DecodeHandleArg(U64(3)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short handle arg: %v", err)
	}
	from, to, err := DecodeTwoPaths(EncodeStrings("/a", "/b"))
	if err != nil || from != "/a" || to != "/b" {
		t.Fatalf("DecodeTwoPaths = %q %q %v", from, to, err)
	}
	if _, _, err := DecodeTwoPaths([]byte("/a")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("rename without separator: %v", err)
	}
	for in, want := range map[string]string{"/x\x00": "/x", "/x": "/x", "/x\x00junk": "/x", "": ""} {
		if got := PathArg([]byte(in)); got != want {
			t.Errorf("PathArg(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseKeyValues(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{in: "st_size\x0012\x00st_ifmt\x00S_IFREG\x00", want: map[string]string{"st_size": "12", "st_ifmt": "S_IFREG"}},
		{in: "", want: map[string]string{}},
		{in: "k\x00", wantErr: true},
		{in: "k\x00v", want: map[string]string{"k": "v"}},
	}
	for _, tc := range tests {
		got, err := ParseKeyValues([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Fatalf("ParseKeyValues(%q) err = %v", tc.in, err)
		}
		if tc.wantErr {
			continue
		}
		if len(got) != len(tc.want) {
			t.Fatalf("ParseKeyValues(%q) = %v, want %v", tc.in, got, tc.want)
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Fatalf("ParseKeyValues(%q)[%q] = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

func TestStatusErrorIs(t *testing.T) {
	tests := []struct {
		st   Status
		want error
	}{
		{StatusOpWouldBlock, ErrWouldBlock},
		{StatusObjectNotFound, ErrNotFound},
		{StatusObjectExists, ErrExists},
		{StatusDirNotEmpty, ErrDirNotEmpty},
		{StatusPermDenied, ErrPermission},
	}
	for _, tc := range tests {
		var err error = &StatusError{Op: OpFileLock, Status: tc.st}
		if !errors.Is(err, tc.want) {
			t.Errorf("status %d is not %v", tc.st, tc.want)
		}
		if errors.Is(err, ErrBusy) {
			t.Errorf("status %d claims to be ErrBusy", tc.st)
		}
	}
	if e := (&StatusError{Op: OpFileLock, Status: 99}); e.Unwrap() != nil || e.Error() == "" {
		t.Errorf("unknown status: unwrap %v, text %q", e.Unwrap(), e.Error())
	}
}

func FuzzReadPacket(f *testing.F) {
	f.Add(Packet{Num: 1, Op: OpFileOpen, HeaderPayload: EncodeOpen(ModeReadWrite, SyncLockPath)}.Encode())
	f.Add(Packet{Num: 2, Op: OpFileWrite, HeaderPayload: U64(1), Payload: []byte("data")}.Encode())
	f.Add(StatusPacket(3, StatusOpWouldBlock).Encode())
	f.Add(rawHeader(Magic, 40, 40, 0, 0))
	f.Add(rawHeader(Magic, 1<<62, 48, 0, 0))
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 1 << 16
		p, rest, err := DecodePacket(in, limit)
		if err != nil {
			return
		}
		// A packet that decoded re-encodes to exactly the bytes it came from.
		enc := p.Encode()
		if len(enc) > limit {
			t.Fatalf("decoded a packet of %d bytes over the %d limit", len(enc), limit)
		}
		if !bytes.Equal(enc, in[:len(in)-len(rest)]) {
			t.Fatalf("round trip differs:\n% x\n% x", enc, in[:len(in)-len(rest)])
		}
		// Arguments decoders never panic on whatever the packet carries.
		_, _, _ = DecodeOpen(p.HeaderPayload)
		_, _, _ = DecodeHandleArg(p.HeaderPayload)
		_, _, _ = DecodeTwoPaths(p.HeaderPayload)
		_, _ = DecodeU64(p.Body())
		_ = PathArg(p.HeaderPayload)
	})
}

func FuzzParseKeyValues(f *testing.F) {
	f.Add([]byte("st_size\x0012\x00st_ifmt\x00S_IFREG\x00"))
	f.Add([]byte("a\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ParseKeyValues(in)
		if err != nil {
			return
		}
		// Re-encoding what parsed must parse to the same map.
		var list []string
		for k, v := range m {
			list = append(list, k, v)
		}
		m2, err := ParseKeyValues(EncodeStrings(list...))
		if err != nil {
			t.Fatalf("re-encoded list does not parse: %v", err)
		}
		for k, v := range m {
			if m2[k] != v {
				t.Fatalf("key %q: %q became %q", k, v, m2[k])
			}
		}
	})
}
