package backupsvc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/wire"
)

// testHost is a minimal mobilebackup2 host for these tests, with the
// file-system semantics of idevicebackup2 over an in-memory tree. It is
// strict where idevicebackup2 is lax (paths must stay inside the tree,
// parents must exist), so that a device bug shows up as a failure.
type testHost struct {
	dl *devicelink.Conn
	// files holds the backup tree: path → content; dirs its directories.
	files map[string][]byte
	dirs  map[string]bool
	// discard drops the content of data files (xx/<fileID>), so that a
	// benchmark does not hold the device in memory.
	discard bool
	free    uint64

	// sizes are the sizes of data files whose content was discarded.
	sizes map[string]int64
	// lie, if set, changes the host's listings (a wrong host).
	lie func(dir string, entries map[string]any)
	// unreadable are the paths the device sent as an error block alone.
	unreadable []string

	// What happened.
	msgs      []string // DL message names received, in order
	uploaded  []string // backup paths of uploaded files, in order
	gotBytes  int64    // content bytes received
	final     map[string]any
	rejected  string // a path the host refused
	firstMsg  time.Time
	requested time.Time
}

func newTestHost() *testHost {
	return &testHost{files: map[string][]byte{}, dirs: map[string]bool{}, sizes: map[string]int64{}, free: 1 << 40}
}

// errAbort is the host giving up on a hostile or broken device.
var errAbort = errors.New("test host aborted")

// run performs one exchange on c: handshake, request, then serve the
// device's requests until its final Response. It always closes c.
func (h *testHost) run(c net.Conn, req map[string]any) error {
	defer c.Close()
	h.dl = devicelink.NewConn(c)
	h.dl.MaxBlock = 8 << 20
	h.final = nil
	if _, err := h.dl.HostVersionExchange(); err != nil {
		return fmt.Errorf("version exchange: %w", err)
	}
	if err := h.dl.SendProcessMessage(map[string]any{"MessageName": "Hello", "SupportedProtocolVersions": []any{2.0, 2.1}}); err != nil {
		return err
	}
	resp, err := h.dl.ReadProcessMessage()
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	if resp["ErrorCode"] != uint64(0) || resp["ProtocolVersion"] != 2.1 {
		return fmt.Errorf("hello response %v", resp)
	}
	if err := h.dl.SendProcessMessage(req); err != nil {
		return err
	}
	h.requested = time.Now()
	h.firstMsg = time.Time{}
	for {
		name, msg, err := h.dl.ReadMessage()
		if err != nil {
			return fmt.Errorf("reading: %w", err)
		}
		if h.firstMsg.IsZero() {
			h.firstMsg = time.Now()
		}
		h.msgs = append(h.msgs, name)
		if err := h.handle(name, msg); err != nil {
			if err == io.EOF {
				// Done: like idevicebackup2, say goodbye.
				h.dl.Disconnect("")
				return nil
			}
			return err
		}
	}
}

// confine refuses paths a device must not name.
func (h *testHost) confine(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.Contains(p, "..") {
		h.rejected = p
		return fmt.Errorf("%w: path %q", errAbort, p)
	}
	return nil
}

func (h *testHost) handle(name string, msg []any) error {
	switch name {
	case devicelink.MsgDownloadFiles:
		paths, err := devicelink.Strings(msg[1])
		if err != nil {
			return err
		}
		fw := h.dl.NewFileWriter(devicelink.Download, 0)
		errs := map[string]devicelink.FileError{}
		for _, p := range paths {
			if err := h.confine(p); err != nil {
				return err
			}
			content, ok := h.files[p]
			if !ok {
				// idevicebackup2 stops at the first missing file.
				fw.Begin("", p)
				fw.Fail("No such file or directory")
				errs[p] = devicelink.FileError{Code: devicelink.CodeNoEntry, Message: "No such file or directory"}
				break
			}
			if _, err := fw.SendFile("", p, bytes.NewReader(content)); err != nil {
				return err
			}
		}
		if err := fw.Finish(); err != nil {
			return err
		}
		if len(errs) > 0 {
			return h.dl.SendStatusResponse(devicelink.CodeMultiStatus, "Multi status", devicelink.MultiStatus(errs))
		}
		return h.dl.SendStatusResponse(0, "", map[string]any{})

	case devicelink.MsgUploadFiles:
		if len(msg) < 4 {
			return fmt.Errorf("UploadFiles with %d elements", len(msg))
		}
		if _, ok := msg[2].(float64); !ok {
			return fmt.Errorf("UploadFiles progress is %T", msg[2])
		}
		if _, ok := wire.Uint(msg[3]); !ok {
			return fmt.Errorf("UploadFiles total is %T", msg[3])
		}
		fr := h.dl.NewFileReader(devicelink.Upload)
		code := int64(0)
		for {
			hd, err := fr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return fmt.Errorf("%w: %w", errAbort, err)
			}
			if err := h.confine(hd.Path); err != nil {
				return err
			}
			if !h.dirs[path.Dir(hd.Path)] {
				code = devicelink.CodeNoEntry // fopen would fail
			}
			h.uploaded = append(h.uploaded, hd.Path)
			var rfe *devicelink.RemoteFileError
			if h.discard && isDataPath(hd.Path) {
				n, err := fr.WriteTo(io.Discard)
				h.gotBytes += n
				if err != nil && !errors.As(err, &rfe) {
					return err
				}
				h.files[hd.Path] = nil
				h.sizes[hd.Path] = n
				continue
			}
			var buf bytes.Buffer
			n, err := fr.WriteTo(&buf)
			h.gotBytes += n
			if errors.As(err, &rfe) && !rfe.AfterData {
				// The device could not read it: kept empty, as
				// idevicebackup2 does.
				h.unreadable = append(h.unreadable, hd.Path)
			} else if err != nil && !errors.As(err, &rfe) {
				return err
			}
			h.files[hd.Path] = buf.Bytes()
		}
		return h.dl.SendStatusResponse(code, "", map[string]any{})

	case devicelink.MsgGetFreeDiskSpace:
		return h.dl.SendStatusResponse(0, "", h.free)

	case devicelink.MsgContentsOfDir:
		p, err := devicelink.Arg[string](msg, 1)
		if err != nil {
			return err
		}
		if err := h.confine(p); err != nil {
			return err
		}
		return h.dl.SendStatusResponse(0, "", h.list(p))

	case devicelink.MsgCreateDirectory:
		p, err := devicelink.Arg[string](msg, 1)
		if err != nil {
			return err
		}
		if err := h.confine(p); err != nil {
			return err
		}
		for d := p; d != "." && d != "/"; d = path.Dir(d) {
			h.dirs[d] = true
		}
		return h.dl.SendStatusResponse(0, "", nil)

	case devicelink.MsgMoveItems, devicelink.MsgMoveFiles:
		mv, err := devicelink.MovesArg(msg, 1)
		if err != nil {
			return err
		}
		moves := map[string]string{}
		if err := mv.Each(func(src, dst string) error { moves[src] = dst; return nil }); err != nil {
			return err
		}
		for src, dst := range moves {
			if err := h.confine(src); err != nil {
				return err
			}
			if err := h.confine(dst); err != nil {
				return err
			}
			if !h.dirs[path.Dir(dst)] {
				return h.dl.SendStatusResponse(devicelink.CodeNoEntry, "No such file or directory", map[string]any{})
			}
			h.remove(dst)
			if c, ok := h.files[src]; ok {
				delete(h.files, src)
				h.files[dst] = c
				if n, ok := h.sizes[src]; ok {
					delete(h.sizes, src)
					h.sizes[dst] = n
				}
				continue
			}
			moved := false
			for p, c := range h.files {
				if p == src || strings.HasPrefix(p, src+"/") {
					delete(h.files, p)
					np := dst + strings.TrimPrefix(p, src)
					h.files[np] = c
					moved = true
				}
			}
			if !moved {
				return h.dl.SendStatusResponse(devicelink.CodeNoEntry, "No such file or directory", map[string]any{})
			}
		}
		return h.dl.SendStatusResponse(0, "", map[string]any{})

	case devicelink.MsgRemoveItems, devicelink.MsgRemoveFiles:
		paths, err := devicelink.Strings(msg[1])
		if err != nil {
			return err
		}
		for _, p := range paths {
			if err := h.confine(p); err != nil {
				return err
			}
			h.remove(p)
		}
		return h.dl.SendStatusResponse(0, "", map[string]any{})

	case devicelink.MsgProcessMessage:
		d, err := devicelink.ProcessMessageDict(msg)
		if err != nil {
			return err
		}
		h.final = d
		return io.EOF

	case devicelink.MsgDisconnect:
		return io.EOF
	}
	return fmt.Errorf("unhandled %s", name)
}

// remove deletes a path and everything under it; missing is fine.
func (h *testHost) remove(p string) {
	delete(h.files, p)
	if !h.dirs[p] {
		return
	}
	for f := range h.files {
		if f == p || strings.HasPrefix(f, p+"/") {
			delete(h.files, f)
		}
	}
	for d := range h.dirs {
		if d == p || strings.HasPrefix(d, p+"/") {
			delete(h.dirs, d)
		}
	}
}

func isDataPath(p string) bool {
	base := path.Base(p)
	return len(base) == 40 && path.Base(path.Dir(p)) == base[:2]
}

// finalCode is the ErrorCode of the device's final Response, or -1.
func (h *testHost) finalCode() int64 {
	if h.final == nil {
		return -1
	}
	c, ok := wire.Int(h.final["ErrorCode"])
	if !ok {
		return -1
	}
	return c
}

// tree lists the backup's paths, sorted.
func (h *testHost) tree() []string {
	var out []string
	for p := range h.files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// connPair returns the two ends of a unix socket connection.
func connPair(t testing.TB) (device, host net.Conn) {
	t.Helper()
	dir, err := os.MkdirTemp("", "bsvc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	host, err = net.Dial("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	device = <-accepted
	if device == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { device.Close(); host.Close() })
	return device, host
}

// list is the host's DLContentsOfDirectory answer for dir, as
// idevicebackup2 gives it: each file and directory directly in it, with
// its type and size; a missing directory lists as empty.
func (h *testHost) list(dir string) map[string]any {
	out := map[string]any{}
	entry := func(typ string, size int64) map[string]any {
		return map[string]any{"DLFileType": typ, "DLFileSize": uint64(size), "DLFileModificationDate": time.Now()}
	}
	for p, c := range h.files {
		if path.Dir(p) == dir {
			size := int64(len(c))
			if n, ok := h.sizes[p]; ok {
				size = n
			}
			out[path.Base(p)] = entry("DLFileTypeRegular", size)
		}
	}
	for d := range h.dirs {
		if path.Dir(d) == dir {
			out[path.Base(d)] = entry("DLFileTypeDirectory", 4096)
		}
	}
	if h.lie != nil {
		h.lie(dir, out)
	}
	return out
}
