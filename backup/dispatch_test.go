package backup

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/wire"
)

// harness is a session over a pipe to a fake device, on a staging root
// that sits inside base next to a "sentinel" directory a hostile request
// would reach.
type harness struct {
	t     *testing.T
	base  string
	stage string
	s     *session
	dev   *devicelink.Conn
	devC  net.Conn
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	base := t.TempDir()
	stage := filepath.Join(base, "stage")
	for _, d := range []string{filepath.Join(stage, "U"), filepath.Join(base, "sentinel")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "sentinel", "keep"), []byte("bait"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs, err := openStagingFS(stage)
	if err != nil {
		t.Fatal(err)
	}
	host, dev := net.Pipe()
	if opts.StallTimeout == 0 {
		opts.StallTimeout = 5 * time.Second
	}
	opts = opts.withDefaults()
	h := &harness{t: t, base: base, stage: stage, s: newSession(host, opts, fs, stage, nil), dev: devicelink.NewConn(dev), devC: dev}
	t.Cleanup(func() {
		host.Close()
		dev.Close()
		fs.Close()
	})
	return h
}

// reply is what the fake device saw in answer to one message.
type reply struct {
	st      devicelink.StatusResponse
	stErr   error
	files   map[string][]byte // downloads received, by path
	failed  map[string]string // downloads the host sent an error for
	hostErr error             // what dispatch returned
}

// exchange sends msg (and stream, raw bytes that follow it) as the
// device, lets the host dispatch it, and reads the answer.
func (h *harness) exchange(msg []any, stream []byte) reply {
	h.t.Helper()
	go func() {
		if err := h.dev.WriteRaw(msg); err != nil {
			return
		}
		if len(stream) > 0 {
			h.dev.Writer().Write(stream)
		}
	}()
	hostDone := make(chan error, 1)
	go func() {
		name, m, err := h.s.dl.ReadMessage()
		if err != nil {
			hostDone <- err
			return
		}
		_, err = h.s.dispatch(name, m)
		hostDone <- err
	}()
	var r reply
	devDone := make(chan struct{})
	go func() {
		defer close(devDone)
		if msg[0] == devicelink.MsgDownloadFiles {
			r.files, r.failed = map[string][]byte{}, map[string]string{}
			fr := h.dev.NewFileReader(devicelink.Download)
			for {
				hd, err := fr.Next()
				if err != nil {
					if err != io.EOF {
						r.stErr = err
						return
					}
					break
				}
				var buf bytes.Buffer
				_, err = fr.WriteTo(&buf)
				var rfe *devicelink.RemoteFileError
				switch {
				case errors.As(err, &rfe):
					r.failed[hd.Path] = rfe.Message
				case err != nil:
					r.stErr = err
					return
				default:
					r.files[hd.Path] = buf.Bytes()
				}
			}
		}
		r.st, r.stErr = h.dev.ReadStatusResponse()
	}()
	select {
	case r.hostErr = <-hostDone:
	case <-time.After(10 * time.Second):
		h.t.Fatal("the host did not answer")
	}
	select {
	case <-devDone:
	case <-time.After(200 * time.Millisecond):
		// The host ended without an answer: unblock the device.
		h.devC.Close()
		<-devDone
	}
	return r
}

// uploadStream encodes an upload file stream.
func uploadStream(t *testing.T, files ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	c := devicelink.NewConn(struct {
		io.Reader
		io.Writer
	}{strings.NewReader(""), &buf})
	fw := c.NewFileWriter(devicelink.Upload, 7) // small blocks: many of them
	for _, f := range files {
		if _, err := fw.SendFile("dev/"+f[0], f[0], strings.NewReader(f[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Finish(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (h *harness) write(rel, content string) {
	h.t.Helper()
	p := filepath.Join(h.stage, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) read(rel string) (string, error) {
	b, err := os.ReadFile(filepath.Join(h.stage, filepath.FromSlash(rel)))
	return string(b), err
}

// checkSentinel checks that nothing beside the staging root changed.
func (h *harness) checkSentinel() {
	h.t.Helper()
	got, err := listTree(h.base)
	if err != nil {
		h.t.Fatal(err)
	}
	var outside []string
	for _, p := range got {
		if p != "stage" && !strings.HasPrefix(p, "stage/") {
			outside = append(outside, p)
		}
	}
	if want := []string{".", "sentinel", "sentinel/keep"}; !slices.Equal(outside, want) {
		h.t.Errorf("outside the staging root: %v, want %v", outside, want)
	}
	if b, _ := os.ReadFile(filepath.Join(h.base, "sentinel", "keep")); string(b) != "bait" {
		h.t.Errorf("the bait changed: %q", b)
	}
}

// replyOK fails unless the host answered r's message with success.
func replyOK(t *testing.T, r reply) {
	t.Helper()
	if r.hostErr != nil || r.stErr != nil || r.st.Code != 0 {
		t.Fatalf("host %v, device read %v, status %+v", r.hostErr, r.stErr, r.st)
	}
}

// replyRefused fails unless the host refused r's message as hostile.
func replyRefused(t *testing.T, r reply) {
	t.Helper()
	if !isHostile(r.hostErr) {
		t.Fatalf("host error %v, want a refusal as hostile", r.hostErr)
	}
}

func isHostile(err error) bool {
	return errors.Is(err, ErrHostile) && cause.Of(err) == cause.ProtocolError
}

func TestDispatch(t *testing.T) {
	type check func(t *testing.T, h *harness, r reply)
	outside := func(h *harness) {
		if err := os.Symlink(filepath.Join(h.base, "sentinel"), filepath.Join(h.stage, "U", "link")); err != nil {
			h.t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		setup  func(h *harness)
		msg    []any
		stream func(t *testing.T) []byte
		check  check
	}{
		{
			name: "create directory with parents",
			msg:  []any{devicelink.MsgCreateDirectory, "U/Snapshot/ab"},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				if fi, err := os.Stat(filepath.Join(h.stage, "U", "Snapshot", "ab")); err != nil || !fi.IsDir() {
					t.Fatal(err)
				}
			},
		},
		{
			name:  "create directory over a file",
			setup: func(h *harness) { h.write("U/f", "x") },
			msg:   []any{devicelink.MsgCreateDirectory, "U/f"},
			check: func(t *testing.T, h *harness, r reply) {
				if r.hostErr != nil || r.st.Code == 0 {
					t.Fatalf("host %v, status %+v", r.hostErr, r.st)
				}
			},
		},
		{
			name: "create directory outside",
			msg:  []any{devicelink.MsgCreateDirectory, "U/../../sentinel/new"},
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
				if r.st.Code != devicelink.CodeGeneric {
					t.Errorf("the refusal answered %+v", r.st)
				}
			},
		},
		{
			name:  "create directory through a symlink",
			setup: outside,
			msg:   []any{devicelink.MsgCreateDirectory, "U/link/new"},
			check: func(t *testing.T, h *harness, r reply) { replyRefused(t, r) },
		},
		{
			name: "upload new files",
			msg:  []any{devicelink.MsgUploadFiles, map[string]any{}, 10.0, uint64(20)},
			stream: func(t *testing.T) []byte {
				return uploadStream(t, [2]string{"U/a", "hello, world"}, [2]string{"U/empty", ""})
			},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				if s, err := h.read("U/a"); s != "hello, world" || err != nil {
					t.Errorf("U/a = %q, %v", s, err)
				}
				if s, err := h.read("U/empty"); s != "" || err != nil {
					t.Errorf("U/empty = %q, %v", s, err)
				}
				if h.s.files != 2 || h.s.bytes != 12 || h.s.percent != 10 {
					t.Errorf("counted %d files, %d bytes, %v%%", h.s.files, h.s.bytes, h.s.percent)
				}
				entries, _ := os.ReadDir(filepath.Join(h.stage, "U"))
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), ".backupd-") {
						t.Errorf("temporary file left: %s", e.Name())
					}
				}
			},
		},
		{
			// The clone shares inodes with the last backup: an upload must
			// replace the name, never write into the shared file.
			name: "upload over a hard-linked file",
			setup: func(h *harness) {
				h.write("U/b", "old content")
				if err := os.Link(filepath.Join(h.stage, "U", "b"), filepath.Join(h.base, "sentinel", "keep-link")); err != nil {
					h.t.Fatal(err)
				}
			},
			msg:    []any{devicelink.MsgUploadFiles, map[string]any{}, 10.0, uint64(3)},
			stream: func(t *testing.T) []byte { return uploadStream(t, [2]string{"U/b", "new"}) },
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				if s, _ := h.read("U/b"); s != "new" {
					t.Errorf("U/b = %q", s)
				}
				if b, _ := os.ReadFile(filepath.Join(h.base, "sentinel", "keep-link")); string(b) != "old content" {
					t.Errorf("the other link changed to %q", b)
				}
				os.Remove(filepath.Join(h.base, "sentinel", "keep-link"))
			},
		},
		{
			name: "upload into a missing directory",
			msg:  []any{devicelink.MsgUploadFiles, map[string]any{}, 10.0, uint64(6)},
			stream: func(t *testing.T) []byte {
				return uploadStream(t, [2]string{"U/nodir/a", "abc"}, [2]string{"U/c", "def"})
			},
			check: func(t *testing.T, h *harness, r reply) {
				if r.hostErr != nil || r.st.Code != devicelink.CodeNoEntry {
					t.Fatalf("host %v, status %+v; want -6", r.hostErr, r.st)
				}
			},
		},
		{
			name: "upload outside",
			msg:  []any{devicelink.MsgUploadFiles, map[string]any{}, 10.0, uint64(6)},
			stream: func(t *testing.T) []byte {
				return uploadStream(t, [2]string{"U/ok", "abc"}, [2]string{"U/../../sentinel/x", "def"}, [2]string{"U/after", "ghi"})
			},
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
				if r.st.Code != devicelink.CodeGeneric {
					t.Errorf("the refusal answered %+v", r.st)
				}
				if _, err := h.read("U/after"); err == nil {
					t.Error("a file after the refusal was stored")
				}
			},
		},
		{
			name:   "upload through a symlink",
			setup:  outside,
			msg:    []any{devicelink.MsgUploadFiles, map[string]any{}, 10.0, uint64(6)},
			stream: func(t *testing.T) []byte { return uploadStream(t, [2]string{"U/link/x", "abc"}) },
			check:  func(t *testing.T, h *harness, r reply) { replyRefused(t, r) },
		},
		{
			// Real iPhones announce less than they send (issue #13).
			name:   "upload more than announced",
			msg:    []any{devicelink.MsgUploadFiles, map[string]any{}, 10.0, uint64(4)},
			stream: func(t *testing.T) []byte { return uploadStream(t, [2]string{"U/more", strings.Repeat("x", 90)}) },
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				if s, _ := h.read("U/more"); len(s) != 90 {
					t.Errorf("stored %d bytes of 90", len(s))
				}
			},
		},
		{
			name:   "upload a file over the largest allowed",
			msg:    []any{devicelink.MsgUploadFiles, map[string]any{}, 10.0, uint64(400)},
			stream: func(t *testing.T) []byte { return uploadStream(t, [2]string{"U/big", strings.Repeat("x", 200)}) },
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
				if _, err := h.read("U/big"); err == nil {
					t.Error("the oversized file was stored")
				}
			},
		},
		{
			name:  "download present, missing and a directory",
			setup: func(h *harness) { h.write("U/Status.plist", "status") },
			msg:   []any{devicelink.MsgDownloadFiles, []any{"U/Status.plist", "U/Manifest.db", "U"}, map[string]any{}, 5.0},
			check: func(t *testing.T, h *harness, r reply) {
				if r.hostErr != nil || r.stErr != nil {
					t.Fatalf("host %v, device %v", r.hostErr, r.stErr)
				}
				if string(r.files["U/Status.plist"]) != "status" {
					t.Errorf("files %q", r.files)
				}
				if _, ok := r.failed["U/Manifest.db"]; !ok {
					t.Errorf("failed %v", r.failed)
				}
				if r.st.Code != devicelink.CodeMultiStatus {
					t.Fatalf("status %+v", r.st)
				}
				errs, err := devicelink.ParseMultiStatus(r.st.Payload)
				if err != nil || errs["U/Manifest.db"].Code != devicelink.CodeNoEntry || errs["U"].Code != devicelink.CodeIsDir {
					t.Errorf("multi-status %v %v", errs, err)
				}
			},
		},
		{
			name:  "download through a symlink",
			setup: outside,
			msg:   []any{devicelink.MsgDownloadFiles, []any{"U/link/keep"}, map[string]any{}, 5.0},
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
				if len(r.files) != 0 {
					t.Errorf("sent %q", r.files)
				}
			},
		},
		{
			name: "download absolute, climbing out",
			msg:  []any{devicelink.MsgDownloadFiles, []any{"/../etc/passwd"}, map[string]any{}, 5.0},
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
				if len(r.files) != 0 || r.st.Code != devicelink.CodeMultiStatus {
					t.Errorf("sent %q, status %+v", r.files, r.st)
				}
			},
		},
		{
			name: "free space",
			msg:  []any{devicelink.MsgGetFreeDiskSpace},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				if n, ok := wire.Uint(r.st.Payload); !ok || n == 0 {
					t.Errorf("free space %v", r.st.Payload)
				}
			},
		},
		{
			name: "contents of a directory",
			setup: func(h *harness) {
				h.write("U/d/f", "12345")
				os.Mkdir(filepath.Join(h.stage, "U", "d", "sub"), 0o755)
			},
			msg: []any{devicelink.MsgContentsOfDir, "U/d"},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				m, _ := r.st.Payload.(map[string]any)
				f, _ := m["f"].(map[string]any)
				sub, _ := m["sub"].(map[string]any)
				if len(m) != 2 || f["DLFileType"] != "DLFileTypeRegular" || f["DLFileSize"] != uint64(5) || sub["DLFileType"] != "DLFileTypeDirectory" {
					t.Errorf("listing %v", m)
				}
				if _, ok := f["DLFileModificationDate"].(time.Time); !ok {
					t.Errorf("modification date %T", f["DLFileModificationDate"])
				}
			},
		},
		{
			name: "contents of a missing directory",
			msg:  []any{devicelink.MsgContentsOfDir, "U/none"},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				if m, _ := r.st.Payload.(map[string]any); len(m) != 0 {
					t.Errorf("listing %v", m)
				}
			},
		},
		{
			name: "move over a file and over a directory",
			setup: func(h *harness) {
				h.write("U/Snapshot/a", "new a")
				h.write("U/Snapshot/b", "new b")
				h.write("U/a", "old a")
				h.write("U/b/inner", "old b")
			},
			msg: []any{devicelink.MsgMoveItems, map[string]any{"U/Snapshot/a": "U/a", "U/Snapshot/b": "U/b"}, map[string]any{}, 95.0},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				a, _ := h.read("U/a")
				b, _ := h.read("U/b")
				if a != "new a" || b != "new b" {
					t.Errorf("after move: %q %q", a, b)
				}
				if h.s.percent != 95 {
					t.Errorf("progress %v", h.s.percent)
				}
			},
		},
		{
			name: "move a missing file",
			msg:  []any{devicelink.MsgMoveFiles, map[string]any{"U/none": "U/x"}, map[string]any{}, 95.0},
			check: func(t *testing.T, h *harness, r reply) {
				if r.hostErr != nil || r.st.Code != devicelink.CodeNoEntry {
					t.Fatalf("host %v, status %+v", r.hostErr, r.st)
				}
			},
		},
		{
			name:  "move outside leaves everything",
			setup: func(h *harness) { h.write("U/Snapshot/a", "a"); h.write("U/Snapshot/b", "b") },
			msg:   []any{devicelink.MsgMoveItems, map[string]any{"U/Snapshot/a": "U/a", "U/Snapshot/b": "U/../../sentinel/b"}, map[string]any{}, 95.0},
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
				// Every path is checked before anything moves.
				if s, _ := h.read("U/Snapshot/a"); s != "a" {
					t.Error("a move ran before the refusal")
				}
			},
		},
		{
			name:  "move into a symlinked directory",
			setup: func(h *harness) { outside(h); h.write("U/Snapshot/a", "a") },
			msg:   []any{devicelink.MsgMoveItems, map[string]any{"U/Snapshot/a": "U/link/a"}, map[string]any{}, 95.0},
			check: func(t *testing.T, h *harness, r reply) { replyRefused(t, r) },
		},
		{
			name:  "remove files, directories and missing paths",
			setup: func(h *harness) { h.write("U/f", "x"); h.write("U/Snapshot/d/f", "y") },
			msg:   []any{devicelink.MsgRemoveItems, []any{"U/f", "U/Snapshot", "U/none"}, map[string]any{}, 98.0},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				for _, p := range []string{"U/f", "U/Snapshot"} {
					if _, err := os.Lstat(filepath.Join(h.stage, p)); err == nil {
						t.Errorf("%s still there", p)
					}
				}
			},
		},
		{
			name:  "remove a symlink removes only the link",
			setup: outside,
			msg:   []any{devicelink.MsgRemoveFiles, []any{"U/link"}, map[string]any{}, 98.0},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				if _, err := os.Lstat(filepath.Join(h.stage, "U", "link")); err == nil {
					t.Error("the link is still there")
				}
			},
		},
		{
			name:  "remove outside",
			setup: func(h *harness) { h.write("U/f", "x") },
			msg:   []any{devicelink.MsgRemoveItems, []any{"U/f", "U/../../sentinel"}, map[string]any{}, 98.0},
			check: func(t *testing.T, h *harness, r reply) {
				replyRefused(t, r)
				if _, err := h.read("U/f"); err != nil {
					t.Error("a removal ran before the refusal")
				}
			},
		},
		{
			name:  "remove through a symlink",
			setup: outside,
			msg:   []any{devicelink.MsgRemoveItems, []any{"U/link/keep"}, map[string]any{}, 98.0},
			check: func(t *testing.T, h *harness, r reply) { replyRefused(t, r) },
		},
		{
			name: "copy a file over a hard-linked one, and a directory",
			setup: func(h *harness) {
				h.write("U/src", "copied")
				h.write("U/dst", "old")
				h.write("U/dir/f", "in dir")
				if err := os.Link(filepath.Join(h.stage, "U", "dst"), filepath.Join(h.base, "sentinel", "dst-link")); err != nil {
					h.t.Fatal(err)
				}
			},
			msg: []any{devicelink.MsgCopyItem, "U/src", "U/dst"},
			check: func(t *testing.T, h *harness, r reply) {
				replyOK(t, r)
				if s, _ := h.read("U/dst"); s != "copied" {
					t.Errorf("dst = %q", s)
				}
				if b, _ := os.ReadFile(filepath.Join(h.base, "sentinel", "dst-link")); string(b) != "old" {
					t.Errorf("the other link changed to %q", b)
				}
				os.Remove(filepath.Join(h.base, "sentinel", "dst-link"))
				r2 := h.exchange([]any{devicelink.MsgCopyItem, "U/dir", "U/dir2"}, nil)
				replyOK(t, r2)
				if s, _ := h.read("U/dir2/f"); s != "in dir" {
					t.Errorf("dir2/f = %q", s)
				}
			},
		},
		{
			name:  "copy outside",
			setup: func(h *harness) { h.write("U/src", "x") },
			msg:   []any{devicelink.MsgCopyItem, "U/src", "/../tmp/backupd-copy-escape"},
			check: func(t *testing.T, h *harness, r reply) { replyRefused(t, r) },
		},
		{
			name: "purge disk space",
			msg:  []any{devicelink.MsgPurgeDiskSpace},
			check: func(t *testing.T, h *harness, r reply) {
				if r.hostErr != nil || r.st.Code != devicelink.CodeGeneric || r.st.Description != "Operation not supported" {
					t.Fatalf("host %v, status %+v", r.hostErr, r.st)
				}
			},
		},
		{
			name: "malformed arguments",
			msg:  []any{devicelink.MsgRemoveItems, "not an array"},
			check: func(t *testing.T, h *harness, r reply) {
				if cause.Of(r.hostErr) != cause.ProtocolError {
					t.Fatalf("host %v", r.hostErr)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{MaxFileSize: 100})
			if tc.setup != nil {
				tc.setup(h)
			}
			var stream []byte
			if tc.stream != nil {
				stream = tc.stream(t)
			}
			r := h.exchange(tc.msg, stream)
			tc.check(t, h, r)
			h.checkSentinel()
		})
	}
}

func TestProcessMessage(t *testing.T) {
	tests := []struct {
		dict map[string]any
		want *deviceResult
		err  bool
	}{
		{map[string]any{"MessageName": "Response", "ErrorCode": uint64(0)}, &deviceResult{}, false},
		{map[string]any{"MessageName": "Response", "ErrorCode": uint64(208), "ErrorDescription": "passcode"}, &deviceResult{208, "passcode"}, false},
		{map[string]any{"MessageName": "Response"}, nil, true},
		{map[string]any{"MessageName": "Response", "ErrorCode": "zero"}, nil, true},
	}
	for _, tc := range tests {
		s := &session{log: Options{}.withDefaults().Logger}
		err := s.processMessage([]any{devicelink.MsgProcessMessage, tc.dict})
		if (err != nil) != tc.err || (tc.want != nil && (s.final == nil || *s.final != *tc.want)) {
			t.Errorf("%v: final %+v, err %v", tc.dict, s.final, err)
		}
	}
}
