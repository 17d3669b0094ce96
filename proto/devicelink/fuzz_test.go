package devicelink

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/backupd/backupd/proto/wire"
)

// FuzzDecodeMessage feeds arbitrary frame bodies to the message decoder:
// it must return a message or an ErrProtocol error, never panic or blow
// up, and an accepted message must survive re-encoding.
func FuzzDecodeMessage(f *testing.F) {
	seeds := []any{
		[]any{MsgVersionExchange, 400, 0},
		[]any{MsgVersionExchange, MsgVersionsOk, 400},
		[]any{MsgProcessMessage, map[string]any{"MessageName": "Hello", "SupportedProtocolVersions": []any{2.0, 2.1}}},
		[]any{MsgStatusResponse, uint64(1<<64 - 13), "Multi status", map[string]any{"a": map[string]any{"DLFileErrorCode": -6}}},
		[]any{MsgUploadFiles, map[string]any{}, 50.5, uint64(1 << 33)},
		[]any{MsgMoveItems, map[string]any{"U/Snapshot/a": "U/a"}, map[string]any{}, 99.0},
		[]any{MsgDownloadFiles, []any{"U/Status.plist"}, map[string]any{}, 0.0},
		[]any{MsgDisconnect, EmptyParameter},
	}
	for _, s := range seeds {
		f.Add(mustEncode(f, s, wire.Binary))
		f.Add(mustEncode(f, s, wire.XML))
	}
	// A binary plist whose top array holds itself: the decoder must refuse it.
	f.Add([]byte("bplist00\xa1\x00\x08\x00\x00\x00\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0a"))
	f.Add([]byte("<plist><array><string>DLMessagePing</string></array></plist>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		name, msg, err := DecodeMessage(data)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		if len(msg) == 0 || msg[0] != name {
			t.Fatalf("name %q, message %v", name, msg)
		}
		if !utf8.ValidString(name) {
			return // the encoder replaces invalid UTF-8, so no round trip
		}
		// Whatever we accept, we can also send.
		var buf bytes.Buffer
		if err := NewConn(&buf).WriteRaw(msg); err != nil {
			return // some decoded values (e.g. NaN dates) do not re-encode; that is fine
		}
		name2, _, err := NewConn(&buf).ReadMessage()
		if err != nil || name2 != name {
			t.Fatalf("re-decoding %q: %q %v", name, name2, err)
		}
	})
}

// FuzzReadMessage feeds an arbitrary byte stream to ReadMessage until it
// fails: every failure must be an I/O or protocol error.
func FuzzReadMessage(f *testing.F) {
	f.Add(frame(mustEncode(f, []any{MsgPing, "x"}, wire.Binary)))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewConn(rw{bytes.NewReader(data), io.Discard})
		c.MaxMessage = 1 << 20
		for i := 0; ; i++ {
			_, _, err := c.ReadMessage()
			if err == nil {
				continue
			}
			if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
				t.Fatalf("message %d: unexpected error kind %v", i, err)
			}
			return
		}
	})
}

// fuzzStream checks that a reader never yields more content than it was
// given, fails only with I/O or protocol errors, and never panics.
func fuzzStream(t *testing.T, dir Direction, data []byte, maxBlock uint32) {
	c := NewConn(rw{bytes.NewReader(data), io.Discard})
	c.MaxBlock = maxBlock
	fr := c.NewFileReader(dir)
	var total int
	buf := make([]byte, 7) // odd size to cross block boundaries
	for {
		h, err := fr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			checkStreamErr(t, err)
			return
		}
		if len(h.Path) == 0 || len(h.Path) > MaxName || len(h.DeviceName) > MaxName {
			t.Fatalf("bad header accepted: %d/%d bytes", len(h.DeviceName), len(h.Path))
		}
		for {
			n, err := fr.Read(buf)
			total += n
			if total > len(data) {
				t.Fatalf("read %d content bytes from %d input bytes", total, len(data))
			}
			if err == nil {
				continue
			}
			var rfe *RemoteFileError
			if err == io.EOF || errors.As(err, &rfe) {
				break
			}
			checkStreamErr(t, err)
			return
		}
	}
}

func checkStreamErr(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrProtocol) {
		t.Fatalf("unexpected error kind: %v", err)
	}
}

func streamSeeds(f *testing.F, dir Direction) {
	var buf bytes.Buffer
	fw := NewConn(&buf).NewFileWriter(dir, 4)
	fw.SendFile("dev", "U/00/0011", bytes.NewReader([]byte("hello world")))
	fw.SendFile("dev", "U/empty", bytes.NewReader(nil))
	fw.Begin("dev", "U/missing")
	fw.Fail("No such file")
	fw.Finish()
	f.Add(buf.Bytes(), uint32(8))
	f.Add(buf.Bytes()[:buf.Len()/2], uint32(0))
	f.Add([]byte{0, 0, 0, 0}, uint32(0))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF}, uint32(0))
}

// FuzzUploadStream fuzzes the device → host file framing.
func FuzzUploadStream(f *testing.F) {
	streamSeeds(f, Upload)
	f.Fuzz(func(t *testing.T, data []byte, maxBlock uint32) {
		fuzzStream(t, Upload, data, maxBlock)
	})
}

// FuzzDownloadStream fuzzes the host → device file framing.
func FuzzDownloadStream(f *testing.F) {
	streamSeeds(f, Download)
	f.Fuzz(func(t *testing.T, data []byte, maxBlock uint32) {
		fuzzStream(t, Download, data, maxBlock)
	})
}

// FuzzFileRoundTrip checks that whatever the writer produces, the reader
// returns unchanged, for any content, names and block size.
func FuzzFileRoundTrip(f *testing.F) {
	f.Add("dev", "U/ab/abcd", []byte("content"), 3, true)
	f.Add("d", "p", []byte{}, 1, false)
	f.Fuzz(func(t *testing.T, dev, path string, content []byte, blockSize int, upload bool) {
		if len(dev) == 0 || len(path) == 0 || len(dev) > MaxName || len(path) > MaxName {
			return
		}
		blockSize = blockSize%4096 + 1
		if blockSize <= 0 {
			blockSize = -blockSize + 1
		}
		dir := Download
		if upload {
			dir = Upload
		}
		var buf bytes.Buffer
		fw := NewConn(&buf).NewFileWriter(dir, blockSize)
		for i := 0; i < 2; i++ {
			if _, err := fw.SendFile(dev, path, bytes.NewReader(content)); err != nil {
				t.Fatal(err)
			}
		}
		if err := fw.Finish(); err != nil {
			t.Fatal(err)
		}
		c := NewConn(&buf)
		c.MaxBlock = uint32(blockSize)
		fr := c.NewFileReader(dir)
		for i := 0; i < 2; i++ {
			h, err := fr.Next()
			if err != nil {
				t.Fatal(err)
			}
			if h.Path != path || (upload && h.DeviceName != dev) {
				t.Fatalf("header %+v", h)
			}
			got, err := io.ReadAll(fr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, content) {
				t.Fatalf("content differs")
			}
		}
		if _, err := fr.Next(); err != io.EOF {
			t.Fatalf("end: %v", err)
		}
	})
}
