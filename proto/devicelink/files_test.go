package devicelink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
)

func be32(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestUploadFramingBytes pins the exact device → host bytes.
func TestUploadFramingBytes(t *testing.T) {
	var buf bytes.Buffer
	fw := NewConn(&buf).NewFileWriter(Upload, 2)
	if _, err := fw.SendFile("dev", "U/ab", strings.NewReader("xyz")); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.SendFile("e", "U/e", strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	if err := fw.Begin("f", "U/f"); err != nil {
		t.Fatal(err)
	}
	if err := fw.Fail("gone"); err != nil {
		t.Fatal(err)
	}
	if err := fw.Finish(); err != nil {
		t.Fatal(err)
	}
	want := cat(
		be32(3), []byte("dev"), be32(4), []byte("U/ab"),
		be32(3), []byte{0x0C}, []byte("xy"),
		be32(2), []byte{0x0C}, []byte("z"),
		be32(1), []byte{0x00},
		be32(1), []byte("e"), be32(3), []byte("U/e"),
		be32(1), []byte{0x00},
		be32(1), []byte("f"), be32(3), []byte("U/f"),
		be32(5), []byte{0x0B}, []byte("gone"),
		be32(0),
	)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("upload bytes\n got %x\nwant %x", buf.Bytes(), want)
	}
}

// TestDownloadFramingBytes pins the exact host → device bytes.
func TestDownloadFramingBytes(t *testing.T) {
	var buf bytes.Buffer
	fw := NewConn(&buf).NewFileWriter(Download, 0)
	if _, err := fw.SendFile("", "U/Status.plist", strings.NewReader("abc")); err != nil {
		t.Fatal(err)
	}
	if err := fw.Begin("", "U/Manifest.db"); err != nil {
		t.Fatal(err)
	}
	if err := fw.Fail("No such file or directory"); err != nil {
		t.Fatal(err)
	}
	if err := fw.Finish(); err != nil {
		t.Fatal(err)
	}
	want := cat(
		be32(14), []byte("U/Status.plist"),
		be32(4), []byte{0x0C}, []byte("abc"),
		be32(1), []byte{0x00},
		be32(13), []byte("U/Manifest.db"),
		be32(26), []byte{0x06}, []byte("No such file or directory"),
		be32(0),
	)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("download bytes\n got %x\nwant %x", buf.Bytes(), want)
	}
}

type testFile struct {
	dev, path string
	content   []byte
	errMsg    string // sent as the file's error instead of content
}

func TestFileRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	content := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	const bs = 1000
	files := []testFile{
		{dev: "a", path: "U/00/empty", content: nil},
		{dev: "b", path: "U/01/one", content: content(1)},
		{dev: "c", path: "U/02/block-1", content: content(bs - 1)},
		{dev: "d", path: "U/03/block", content: content(bs)},
		{dev: "e", path: "U/04/block+1", content: content(bs + 1)},
		{dev: "f", path: "U/05/missing", errMsg: "No such file"},
		{dev: "g", path: "U/06/many", content: content(7*bs + 13)},
		{dev: strings.Repeat("n", MaxName), path: strings.Repeat("p", MaxName), content: content(5)},
	}
	for _, dir := range []Direction{Upload, Download} {
		for _, useWriteTo := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/writeTo=%v", dir, useWriteTo), func(t *testing.T) {
				var buf bytes.Buffer
				fw := NewConn(&buf).NewFileWriter(dir, bs)
				for i, f := range files {
					if err := fw.Begin(f.dev, f.path); err != nil {
						t.Fatal(err)
					}
					if f.errMsg != "" {
						if err := fw.Fail(f.errMsg); err != nil {
							t.Fatal(err)
						}
						continue
					}
					// Alternate the two ways of feeding content.
					var err error
					if i%2 == 0 {
						_, err = fw.ReadFrom(bytes.NewReader(f.content))
					} else {
						_, err = fw.Write(f.content)
					}
					if err != nil {
						t.Fatal(err)
					}
					if err := fw.End(); err != nil {
						t.Fatal(err)
					}
				}
				if err := fw.Finish(); err != nil {
					t.Fatal(err)
				}
				// A message after the stream must still be readable.
				c := NewConn(&buf)
				if err := c.WriteMessage(MsgPing, "after"); err != nil {
					t.Fatal(err)
				}
				c.MaxBlock = bs
				fr := c.NewFileReader(dir)
				for _, f := range files {
					h, err := fr.Next()
					if err != nil {
						t.Fatal(err)
					}
					if h.Path != f.path {
						t.Fatalf("path %q, want %q", h.Path, f.path)
					}
					if dir == Upload && h.DeviceName != f.dev {
						t.Fatalf("device name %q, want %q", h.DeviceName, f.dev)
					}
					var got bytes.Buffer
					if useWriteTo {
						_, err = fr.WriteTo(&got)
					} else {
						_, err = io.Copy(&got, struct{ io.Reader }{fr})
					}
					if f.errMsg != "" {
						var rfe *RemoteFileError
						if !errors.As(err, &rfe) || rfe.Message != f.errMsg || rfe.AfterData {
							t.Fatalf("%s: err = %v, want remote error %q", f.path, err, f.errMsg)
						}
						continue
					}
					if err != nil {
						t.Fatalf("%s: %v", f.path, err)
					}
					if !bytes.Equal(got.Bytes(), f.content) {
						t.Fatalf("%s: content differs (%d bytes, want %d)", f.path, got.Len(), len(f.content))
					}
				}
				if _, err := fr.Next(); err != io.EOF {
					t.Fatalf("after the last file: %v", err)
				}
				if name, _, err := c.ReadMessage(); err != nil || name != MsgPing {
					t.Fatalf("message after the stream: %q %v", name, err)
				}
			})
		}
	}
}

func TestFileReaderSkipsUnreadContent(t *testing.T) {
	var buf bytes.Buffer
	fw := NewConn(&buf).NewFileWriter(Upload, 10)
	for i := 0; i < 3; i++ {
		if _, err := fw.SendFile("d", fmt.Sprintf("f%d", i), bytes.NewReader(make([]byte, 95))); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Finish(); err != nil {
		t.Fatal(err)
	}
	fr := NewConn(&buf).NewFileReader(Upload)
	for i := 0; i < 3; i++ {
		h, err := fr.Next()
		if err != nil || h.Path != fmt.Sprintf("f%d", i) {
			t.Fatalf("file %d: %+v %v", i, h, err)
		}
		if i == 1 {
			// Read a little of the middle file only.
			if _, err := fr.Read(make([]byte, 3)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	if buf.Len() != 0 {
		t.Fatalf("%d bytes left unread", buf.Len())
	}
}

func TestFileReaderErrors(t *testing.T) {
	up := func(dev, path string) []byte {
		return cat(be32(uint32(len(dev))), []byte(dev), be32(uint32(len(path))), []byte(path))
	}
	tests := []struct {
		name     string
		dir      Direction
		in       []byte
		maxBlock uint32
		want     error // from Next or Read, whichever fails first
	}{
		{"name too long", Download, cat(be32(MaxName+1), make([]byte, MaxName+1)), 0, ErrProtocol},
		{"name 0xFFFFFFFF", Upload, be32(0xFFFFFFFF), 0, ErrProtocol},
		{"empty backup path", Upload, cat(be32(1), []byte("d"), be32(0)), 0, ErrProtocol},
		{"truncated name", Download, cat(be32(10), []byte("abc")), 0, io.ErrUnexpectedEOF},
		{"eof before terminator", Download, nil, 0, io.ErrUnexpectedEOF},
		{"zero block", Upload, cat(up("d", "p"), be32(0)), 0, ErrProtocol},
		{"block too large", Upload, cat(up("d", "p"), be32(102), []byte{0x0C}), 100, ErrProtocol},
		{"block 0xFFFFFFFF", Upload, cat(up("d", "p"), be32(0xFFFFFFFF), []byte{0x0C}), 0, ErrProtocol},
		{"long end of file", Upload, cat(up("d", "p"), be32(2), []byte{0x00, 0x00}), 0, ErrProtocol},
		{"unknown code", Upload, cat(up("d", "p"), be32(1), []byte{0x42}), 0, ErrProtocol},
		{"host error code upstream", Upload, cat(up("d", "p"), be32(1), []byte{CodeHostError}), 0, ErrProtocol},
		{"device error code downstream", Download, cat(be32(1), []byte("p"), be32(1), []byte{CodeDeviceError}), 0, ErrProtocol},
		{"huge error message", Upload, cat(up("d", "p"), be32(maxErrorMessage+2), []byte{CodeDeviceError}), 0, ErrProtocol},
		{"truncated block", Download, cat(be32(1), []byte("p"), be32(11), []byte{0x0C}, []byte("abc")), 0, io.ErrUnexpectedEOF},
		{"truncated header", Download, cat(be32(1), []byte("p"), []byte{0, 0}), 0, io.ErrUnexpectedEOF},
		{"endless empty blocks", Download, cat(be32(1), []byte("p"), bytes.Repeat(cat(be32(1), []byte{0x0C}), maxEmptyBlocks+1)), 0, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := NewConn(rw{bytes.NewReader(tt.in), io.Discard})
			conn.MaxBlock = tt.maxBlock
			fr := conn.NewFileReader(tt.dir)
			err := drain(fr)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			// Errors are sticky.
			if _, err2 := fr.Next(); err2 == nil || err2 == io.EOF {
				t.Fatalf("Next after error = %v", err2)
			}
		})
	}
}

// drain reads a whole stream, returning the first error other than the
// end of the stream. Remote file errors are not stream errors.
func drain(fr *FileReader) error {
	for {
		if _, err := fr.Next(); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		_, err := fr.WriteTo(io.Discard)
		var rfe *RemoteFileError
		if err != nil && !errors.As(err, &rfe) {
			return err
		}
	}
}

func TestSomeEmptyBlocksAreFine(t *testing.T) {
	in := cat(be32(1), []byte("p"), bytes.Repeat(cat(be32(1), []byte{0x0C}), maxEmptyBlocks),
		be32(3), []byte{0x0C}, []byte("ab"), be32(1), []byte{0x0C}, be32(1), []byte{0x00}, be32(0))
	fr := NewConn(rw{bytes.NewReader(in), io.Discard}).NewFileReader(Download)
	if _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(fr)
	if err != nil || string(got) != "ab" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestErrorAfterData(t *testing.T) {
	var buf bytes.Buffer
	fw := NewConn(&buf).NewFileWriter(Upload, 0)
	if err := fw.Begin("d", "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	if err := fw.Fail("read error"); err != nil {
		t.Fatal(err)
	}
	if err := fw.Finish(); err != nil {
		t.Fatal(err)
	}
	fr := NewConn(&buf).NewFileReader(Upload)
	if _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(fr)
	var rfe *RemoteFileError
	if !errors.As(err, &rfe) || !rfe.AfterData || string(got) != "partial" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestFileWriterRefusesBadNames(t *testing.T) {
	fw := NewConn(&bytes.Buffer{}).NewFileWriter(Upload, 0)
	if err := fw.Begin("d", strings.Repeat("x", MaxName+1)); err == nil {
		t.Fatal("accepted a name over MaxName")
	}
	if err := fw.Begin("", "p"); err == nil {
		t.Fatal("accepted an empty device name")
	}
	if err := fw.Finish(); err != nil {
		t.Fatal(err)
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, syscall.EPIPE
	}
	w.n -= len(p)
	return len(p), nil
}

func TestFileWriterStickyError(t *testing.T) {
	fw := NewConn(rw{nil, &failingWriter{n: 10}}).NewFileWriter(Download, 16)
	// Small content stays buffered, so the failure surfaces on Finish.
	if _, err := fw.SendFile("", "p", bytes.NewReader(make([]byte, 100))); err != nil {
		t.Fatal(err)
	}
	if err := fw.Finish(); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Finish = %v", err)
	}
	if err := fw.Begin("", "q"); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Begin after failure = %v", err)
	}
	// Content larger than the buffer fails while streaming.
	fw = NewConn(rw{nil, &failingWriter{n: 10}}).NewFileWriter(Download, 16)
	if _, err := fw.SendFile("", "p", bytes.NewReader(make([]byte, 64<<10))); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("SendFile = %v", err)
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		err  error
		want int64
	}{
		{nil, 0},
		{fs.ErrNotExist, -6},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.ENOENT}, -6},
		{syscall.EEXIST, -7},
		{syscall.ENOTDIR, -8},
		{fmt.Errorf("wrapped: %w", syscall.EISDIR), -9},
		{syscall.ELOOP, -10},
		{syscall.EIO, -11},
		{&fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}, -15},
		{syscall.EACCES, -1},
		{errors.New("other"), -1},
	}
	for _, tt := range tests {
		if got := ErrorCode(tt.err); got != tt.want {
			t.Errorf("ErrorCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
