package backup

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/wire"
)

// scriptConn is a connection whose peer says exactly script and takes
// whatever it is sent.
type scriptConn struct {
	r *bytes.Reader
}

func (c *scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "host", Net: "unix"} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "device", Net: "unix"} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// script builds a device's side of an exchange.
type script struct {
	buf bytes.Buffer
}

func (s *script) msg(args ...any) *script {
	b, err := wire.Encode(args, wire.Binary)
	if err != nil {
		panic(err)
	}
	if err := wire.WriteFrame(&s.buf, b); err != nil {
		panic(err)
	}
	return s
}

func (s *script) upload(total uint64, files ...[2]string) *script {
	s.msg(devicelink.MsgUploadFiles, map[string]any{}, 50.0, total)
	c := devicelink.NewConn(struct {
		io.Reader
		io.Writer
	}{strings.NewReader(""), &s.buf})
	fw := c.NewFileWriter(devicelink.Upload, 5)
	for _, f := range files {
		if _, err := fw.SendFile("d", f[0], strings.NewReader(f[1])); err != nil {
			panic(err)
		}
	}
	if err := fw.Finish(); err != nil {
		panic(err)
	}
	return s
}

func (s *script) bytes() []byte { return s.buf.Bytes() }

func fuzzSeeds() [][]byte {
	const esc = "U/../../sentinel/keep"
	return [][]byte{
		new(script).
			msg(devicelink.MsgDownloadFiles, []any{"U/Status.plist", "U/none"}, map[string]any{}, 1.0).
			msg(devicelink.MsgGetFreeDiskSpace).
			msg(devicelink.MsgCreateDirectory, "U/Snapshot/ab").
			upload(10, [2]string{"U/Snapshot/ab/f", "hello"}, [2]string{"U/Snapshot/ab/g", "world"}).
			msg(devicelink.MsgMoveItems, map[string]any{"U/Snapshot/ab/f": "U/f", "U/Snapshot/ab/g": "U/old"}, map[string]any{}, 95.0).
			msg(devicelink.MsgContentsOfDir, "U").
			msg(devicelink.MsgCopyItem, "U/f", "U/f2").
			msg(devicelink.MsgRemoveItems, []any{"U/Snapshot", "U/none"}, map[string]any{}, 98.0).
			msg(devicelink.MsgProcessMessage, map[string]any{"MessageName": "Response", "ErrorCode": uint64(0)}).
			bytes(),
		new(script).upload(5, [2]string{esc, "evil"}).bytes(),
		new(script).upload(5, [2]string{"U/link/x", "evil"}).bytes(),
		new(script).upload(5, [2]string{"/tmp/backupd-fuzz-absolute", "evil"}).bytes(),
		new(script).upload(1, [2]string{"U/big", strings.Repeat("x", 100)}).bytes(),
		new(script).msg(devicelink.MsgCreateDirectory, "U/link/new").bytes(),
		new(script).msg(devicelink.MsgMoveItems, map[string]any{"U/old": esc}, map[string]any{}, 1.0).bytes(),
		new(script).msg(devicelink.MsgMoveItems, map[string]any{"U/link/keep": "U/stolen"}, map[string]any{}, 1.0).bytes(),
		new(script).msg(devicelink.MsgRemoveItems, []any{"U/link/keep", esc}, map[string]any{}, 1.0).bytes(),
		new(script).msg(devicelink.MsgCopyItem, "U/link", "U/copy").bytes(),
		new(script).msg(devicelink.MsgCopyItem, "U/old", "U/link/copy").bytes(),
		new(script).msg(devicelink.MsgDownloadFiles, []any{"U/link/keep", esc}, map[string]any{}, 1.0).bytes(),
		new(script).msg(devicelink.MsgContentsOfDir, "U/link").bytes(),
		new(script).msg(devicelink.MsgPurgeDiskSpace).msg(devicelink.MsgDisconnect, "bye").bytes(),
		{0xff, 0xff, 0xff, 0xff},
		{0, 0, 0, 8, 'b', 'p', 'l', 'i', 's', 't', '0', '0'},
	}
}

// FuzzDispatch feeds arbitrary device input to the host's message loop
// over a staging root that holds a symlink to a bait directory beside it.
// Whatever arrives, the host must not panic, and nothing outside the
// staging root may be created, changed or removed.
func FuzzDispatch(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	opts := Options{MaxFileSize: 1 << 20}.withDefaults()
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		stage := filepath.Join(base, "stage")
		sentinel := filepath.Join(base, "sentinel")
		for _, d := range []string{filepath.Join(stage, "U", "Snapshot"), sentinel} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for p, content := range map[string]string{
			filepath.Join(sentinel, "keep"):           "bait",
			filepath.Join(stage, "U", "old"):          "old",
			filepath.Join(stage, "U", "Status.plist"): "status",
		} {
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(sentinel, filepath.Join(stage, "U", "link")); err != nil {
			t.Fatal(err)
		}
		fs, err := openStagingFS(stage)
		if err != nil {
			t.Fatal(err)
		}
		s := newSession(&scriptConn{r: bytes.NewReader(data)}, opts, fs, stage, nil)
		for range 256 {
			name, msg, err := s.dl.ReadMessage()
			if err != nil {
				break
			}
			if done, err := s.dispatch(name, msg); done || err != nil {
				break
			}
		}
		fs.Close()

		all, err := listTree(base)
		if err != nil {
			t.Fatal(err)
		}
		var outside []string
		for _, p := range all {
			if p != "stage" && !strings.HasPrefix(p, "stage/") {
				outside = append(outside, p)
			}
		}
		if want := []string{".", "sentinel", "sentinel/keep"}; !slices.Equal(outside, want) {
			t.Fatalf("outside the staging root: %v", outside)
		}
		if b, err := os.ReadFile(filepath.Join(sentinel, "keep")); err != nil || string(b) != "bait" {
			t.Fatalf("the bait changed: %q %v", b, err)
		}
		if _, err := os.Lstat("/tmp/backupd-fuzz-absolute"); err == nil {
			t.Fatal("an absolute path was written")
		}
	})
}
