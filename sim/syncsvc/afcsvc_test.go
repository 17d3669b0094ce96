package syncsvc

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/afc"
)

func serveAFC(cfg AFCConfig) func(context.Context, net.Conn) error {
	return func(ctx context.Context, c net.Conn) error { return ServeAFC(ctx, c, cfg) }
}

// afcConn is one host connection to a simulated device's AFC service.
type afcConn struct {
	*afc.Client
	conn net.Conn
	errc <-chan error
}

func dialAFC(t *testing.T, ctx context.Context, cfg AFCConfig) afcConn {
	t.Helper()
	c, errc := serve(t, ctx, serveAFC(cfg))
	return afcConn{Client: afc.NewClient(c), conn: c, errc: errc}
}

func openLock(t *testing.T, ctx context.Context, c afcConn) uint64 {
	t.Helper()
	h, err := c.FileOpen(ctx, afc.SyncLockPath, afc.ModeReadWrite)
	if err != nil {
		t.Fatalf("open lock file: %v", err)
	}
	return h
}

func TestAFCSyncLock(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, fsys *AFCFS)
	}{
		{"granted, then released by unlock", func(t *testing.T, ctx context.Context, fsys *AFCFS) {
			a := dialAFC(t, ctx, AFCConfig{FS: fsys})
			h := openLock(t, ctx, a)
			if err := a.Lock(ctx, h, afc.LockExclusive); err != nil {
				t.Fatalf("lock: %v", err)
			}
			if !fsys.Locked(afc.SyncLockPath) {
				t.Fatal("file system does not show the lock")
			}
			if err := a.Lock(ctx, h, afc.LockUnlock); err != nil {
				t.Fatalf("unlock: %v", err)
			}
			if fsys.Locked(afc.SyncLockPath) {
				t.Fatal("lock survived unlock")
			}
		}},
		{"busy while another connection holds it", func(t *testing.T, ctx context.Context, fsys *AFCFS) {
			a := dialAFC(t, ctx, AFCConfig{FS: fsys})
			b := dialAFC(t, ctx, AFCConfig{FS: fsys})
			ha, hb := openLock(t, ctx, a), openLock(t, ctx, b)
			if err := a.Lock(ctx, ha, afc.LockExclusive); err != nil {
				t.Fatal(err)
			}
			err := b.Lock(ctx, hb, afc.LockExclusive)
			var se *afc.StatusError
			if !errors.As(err, &se) || se.Status != afc.StatusOpWouldBlock || !errors.Is(err, afc.ErrWouldBlock) {
				t.Fatalf("second holder got %v, want status 19", err)
			}
			if err := b.Lock(ctx, hb, afc.LockShared); !errors.Is(err, afc.ErrWouldBlock) {
				t.Fatalf("shared lock beside an exclusive one: %v", err)
			}
			// Closing the holder's file releases the lock.
			if err := a.FileClose(ctx, ha); err != nil {
				t.Fatal(err)
			}
			if err := b.Lock(ctx, hb, afc.LockExclusive); err != nil {
				t.Fatalf("lock after the holder closed: %v", err)
			}
		}},
		{"two handles on one connection exclude each other", func(t *testing.T, ctx context.Context, fsys *AFCFS) {
			a := dialAFC(t, ctx, AFCConfig{FS: fsys})
			h1, h2 := openLock(t, ctx, a), openLock(t, ctx, a)
			if err := a.Lock(ctx, h1, afc.LockExclusive); err != nil {
				t.Fatal(err)
			}
			if err := a.Lock(ctx, h1, afc.LockExclusive); err != nil {
				t.Fatalf("relocking through the same handle: %v", err)
			}
			if err := a.Lock(ctx, h2, afc.LockExclusive); !errors.Is(err, afc.ErrWouldBlock) {
				t.Fatalf("second handle got %v", err)
			}
		}},
		{"shared locks coexist", func(t *testing.T, ctx context.Context, fsys *AFCFS) {
			a := dialAFC(t, ctx, AFCConfig{FS: fsys})
			b := dialAFC(t, ctx, AFCConfig{FS: fsys})
			ha, hb := openLock(t, ctx, a), openLock(t, ctx, b)
			for _, c := range []struct {
				afcConn
				h uint64
			}{{a, ha}, {b, hb}} {
				if err := c.Lock(ctx, c.h, afc.LockShared); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Lock(ctx, ha, afc.LockExclusive); !errors.Is(err, afc.ErrWouldBlock) {
				t.Fatalf("upgrade beside another shared lock: %v", err)
			}
		}},
		{"a dropped connection releases its locks", func(t *testing.T, ctx context.Context, fsys *AFCFS) {
			a := dialAFC(t, ctx, AFCConfig{FS: fsys})
			if err := a.Lock(ctx, openLock(t, ctx, a), afc.LockExclusive); err != nil {
				t.Fatal(err)
			}
			a.conn.Close()
			if err := served(t, a.errc); err != nil {
				t.Fatalf("Serve after hang-up = %v", err)
			}
			if fsys.Locked(afc.SyncLockPath) {
				t.Fatal("lock outlived its connection")
			}
			b := dialAFC(t, ctx, AFCConfig{FS: fsys})
			if err := b.Lock(ctx, openLock(t, ctx, b), afc.LockExclusive); err != nil {
				t.Fatalf("lock after the holder hung up: %v", err)
			}
		}},
		{"LockNeverGranted answers 19 to every lock", func(t *testing.T, ctx context.Context, fsys *AFCFS) {
			a := dialAFC(t, ctx, AFCConfig{FS: fsys, LockNeverGranted: true})
			h := openLock(t, ctx, a)
			for _, op := range []afc.LockOp{afc.LockExclusive, afc.LockShared, afc.LockBitExclusive} {
				if err := a.Lock(ctx, h, op); !errors.Is(err, afc.ErrWouldBlock) {
					t.Fatalf("lock op %d: %v, want would block", op, err)
				}
			}
			if err := a.Lock(ctx, h, afc.LockUnlock); err != nil {
				t.Fatalf("unlock: %v", err)
			}
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			_, err := a.AcquireSyncLock(short, 10*time.Millisecond)
			if !errors.Is(err, afc.ErrWouldBlock) {
				t.Fatalf("AcquireSyncLock = %v, want would block", err)
			}
		}},
		{"a blocking request waits for the holder", func(t *testing.T, ctx context.Context, fsys *AFCFS) {
			a := dialAFC(t, ctx, AFCConfig{FS: fsys})
			b := dialAFC(t, ctx, AFCConfig{FS: fsys})
			ha, hb := openLock(t, ctx, a), openLock(t, ctx, b)
			if err := a.Lock(ctx, ha, afc.LockExclusive); err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			go func() { got <- b.Lock(ctx, hb, afc.LockBitExclusive) }()
			select {
			case err := <-got:
				t.Fatalf("blocking lock returned %v while held", err)
			case <-time.After(100 * time.Millisecond):
			}
			if err := a.Lock(ctx, ha, afc.LockUnlock); err != nil {
				t.Fatal(err)
			}
			if err := <-got; err != nil {
				t.Fatalf("blocking lock after release: %v", err)
			}
		}},
		{"bad lock arguments", func(t *testing.T, ctx context.Context, fsys *AFCFS) {
			a := dialAFC(t, ctx, AFCConfig{FS: fsys})
			h := openLock(t, ctx, a)
			if err := a.Lock(ctx, h+100, afc.LockExclusive); !errors.Is(err, afc.ErrInvalidArg) {
				t.Fatalf("unknown handle: %v", err)
			}
			if err := a.Lock(ctx, h, afc.LockBitNonBlock); !errors.Is(err, afc.ErrInvalidArg) {
				t.Fatalf("no lock kind: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, testCtx(t), NewAFCFS()) })
	}
}

func TestAFCFiles(t *testing.T) {
	ctx := testCtx(t)
	fsys := NewAFCFS()
	if err := fsys.WriteFile("/iTunes_Control/iTunes/iTunesPrefs", []byte("prefs")); err != nil {
		t.Fatal(err)
	}
	c := dialAFC(t, ctx, AFCConfig{FS: fsys, Model: "iPhone15,3"})

	// What idevicebackup2 does for Info.plist: stat, and read if present.
	if _, err := c.FileInfo(ctx, "/Books/iBooksData2.plist"); !errors.Is(err, afc.ErrNotFound) {
		t.Fatalf("stat of a missing file: %v", err)
	}
	info, err := c.FileInfo(ctx, "/iTunes_Control/iTunes/iTunesPrefs")
	if err != nil || info["st_size"] != "5" || info["st_ifmt"] != "S_IFREG" {
		t.Fatalf("stat = %v, %v", info, err)
	}
	if b, err := c.ReadFile(ctx, "/iTunes_Control/iTunes/iTunesPrefs", 1<<20); err != nil || string(b) != "prefs" {
		t.Fatalf("read = %q, %v", b, err)
	}

	// What a restore does: mkdir, write a whole file, remove it again.
	if err := c.MakeDir(ctx, "/iTunesRestore"); err != nil {
		t.Fatal(err)
	}
	if err := c.MakeDir(ctx, "/iTunesRestore"); err != nil {
		t.Fatalf("mkdir of an existing directory: %v", err)
	}
	h, err := c.FileOpen(ctx, "/iTunesRestore/RestoreApplications.plist", afc.ModeWriteRead)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("<plist/>"), 40000)
	if err := c.FileWrite(ctx, h, big); err != nil {
		t.Fatal(err)
	}
	if err := c.FileClose(ctx, h); err != nil {
		t.Fatal(err)
	}
	if got, _ := fsys.ReadFile("/iTunesRestore/RestoreApplications.plist"); !bytes.Equal(got, big) {
		t.Fatalf("device holds %d bytes, want %d", len(got), len(big))
	}
	if err := c.RemovePath(ctx, "/iTunesRestore"); !errors.Is(err, afc.ErrDirNotEmpty) {
		t.Fatalf("remove of a full directory: %v", err)
	}
	if err := c.RemovePath(ctx, "/iTunesRestore/RestoreApplications.plist"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemovePath(ctx, "/iTunesRestore"); err != nil {
		t.Fatal(err)
	}
	if fsys.Exists("/iTunesRestore") {
		t.Fatal("directory still there")
	}

	names, err := c.ReadDir(ctx, "/")
	if err != nil || len(names) == 0 || names[0] != "Books" {
		t.Fatalf("ReadDir(/) = %v, %v", names, err)
	}
	dev, err := c.DeviceInfo(ctx)
	if err != nil || dev["Model"] != "iPhone15,3" || dev["FSTotalBytes"] == "" {
		t.Fatalf("DeviceInfo = %v, %v", dev, err)
	}

	errTests := []struct {
		name string
		call func() error
		want error
	}{
		{"open a missing file read-only", func() error { _, err := c.FileOpen(ctx, "/nope", afc.ModeReadOnly); return err }, afc.ErrNotFound},
		{"open in a missing directory", func() error { _, err := c.FileOpen(ctx, "/no/such", afc.ModeWriteRead); return err }, afc.ErrNotFound},
		{"open a directory", func() error { _, err := c.FileOpen(ctx, "/Books", afc.ModeReadOnly); return err }, afc.ErrIsDir},
		{"open with a bad mode", func() error { _, err := c.FileOpen(ctx, "/x", 9); return err }, afc.ErrInvalidArg},
		{"remove a missing path", func() error { return c.RemovePath(ctx, "/nope") }, afc.ErrNotFound},
		{"remove the root", func() error { return c.RemovePath(ctx, "/") }, afc.ErrPermission},
		{"list a missing directory", func() error { _, err := c.ReadDir(ctx, "/nope"); return err }, afc.ErrNotFound},
		{"close an unknown handle", func() error { return c.FileClose(ctx, 999) }, afc.ErrInvalidArg},
		{"mkdir over a file", func() error { return c.MakeDir(ctx, "/iTunes_Control/iTunes/iTunesPrefs") }, afc.ErrExists},
	}
	for _, tc := range errTests {
		if err := tc.call(); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestAFCReadWriteModes(t *testing.T) {
	ctx := testCtx(t)
	fsys := NewAFCFS()
	c := dialAFC(t, ctx, AFCConfig{FS: fsys})
	write := func(mode afc.FileMode, data string) error {
		h, err := c.FileOpen(ctx, "/f", mode)
		if err != nil {
			return err
		}
		defer c.FileClose(ctx, h)
		return c.FileWrite(ctx, h, []byte(data))
	}
	steps := []struct {
		mode    afc.FileMode
		data    string
		want    string
		wantErr error
	}{
		{afc.ModeWriteOnly, "hello", "hello", nil},
		{afc.ModeReadWrite, "J", "Jello", nil}, // r+: no truncation
		{afc.ModeAppend, "!", "Jello!", nil},
		{afc.ModeWriteRead, "new", "new", nil}, // w+: truncates
		{afc.ModeReadOnly, "x", "new", afc.ErrPermission},
	}
	for _, s := range steps {
		if err := write(s.mode, s.data); !errors.Is(err, s.wantErr) {
			t.Fatalf("mode %d: %v, want %v", s.mode, err, s.wantErr)
		}
		if got, _ := fsys.ReadFile("/f"); string(got) != s.want {
			t.Fatalf("after mode %d: %q, want %q", s.mode, got, s.want)
		}
	}
}

func TestAFCCapacity(t *testing.T) {
	ctx := testCtx(t)
	fsys := NewAFCFS()
	fsys.SetCapacity(1000)
	c := dialAFC(t, ctx, AFCConfig{FS: fsys})
	h, err := c.FileOpen(ctx, "/a", afc.ModeWriteRead)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.FileWrite(ctx, h, make([]byte, 800)); err != nil {
		t.Fatal(err)
	}
	if err := c.FileWrite(ctx, h, make([]byte, 300)); !errors.Is(err, afc.ErrNoSpace) {
		t.Fatalf("write over capacity: %v", err)
	}
	// A removed file keeps its space until its last handle closes.
	if err := c.RemovePath(ctx, "/a"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile("/b", make([]byte, 300)); !errors.Is(err, afc.ErrNoSpace) {
		t.Fatalf("write while a removed file is open: %v", err)
	}
	if err := c.FileClose(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile("/b", make([]byte, 900)); err != nil {
		t.Fatalf("write after the space came back: %v", err)
	}
}

// rawAFC sends one raw packet and returns the reply, or the error Serve
// returned when it hung up instead.
func rawAFC(t *testing.T, cfg AFCConfig, in []byte) (afc.Packet, error) {
	t.Helper()
	c, errc := serve(t, testCtx(t), serveAFC(cfg))
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = c.Write(in) }()
	p, err := afc.ReadPacket(c, 0)
	if err != nil {
		return afc.Packet{}, served(t, errc)
	}
	return p, nil
}

func TestAFCMalformed(t *testing.T) {
	bigHeader := afc.Packet{Num: 1, Op: afc.OpFileWrite, HeaderPayload: afc.U64(1), Payload: make([]byte, 200)}.Encode()
	tests := []struct {
		name       string
		cfg        AFCConfig
		in         []byte
		wantErr    error      // Serve's error when it hangs up
		wantStatus afc.Status // else the status answered
	}{
		{name: "bad magic", in: append([]byte("XXXXXXXX"), make([]byte, 32)...), wantErr: afc.ErrMalformed},
		{name: "over the packet limit", cfg: AFCConfig{MaxPacket: 100}, in: bigHeader, wantErr: afc.ErrTooLarge},
		{name: "short open arguments", in: afc.Packet{Num: 1, Op: afc.OpFileOpen, HeaderPayload: []byte{1}}.Encode(), wantStatus: afc.StatusInvalidArg},
		{name: "short read arguments", in: afc.Packet{Num: 1, Op: afc.OpFileRead, HeaderPayload: afc.U64(1)}.Encode(), wantStatus: afc.StatusInvalidArg},
		{name: "short lock arguments", in: afc.Packet{Num: 1, Op: afc.OpFileLock}.Encode(), wantStatus: afc.StatusInvalidArg},
		{name: "rename without separator", in: afc.Packet{Num: 1, Op: afc.OpRenamePath, HeaderPayload: []byte("/a")}.Encode(), wantStatus: afc.StatusInvalidArg},
		{name: "unknown operation", in: afc.Packet{Num: 1, Op: 0x99}.Encode(), wantStatus: afc.StatusOpNotSupported},
		{name: "a reply opcode as a request", in: afc.StatusPacket(1, 0).Encode(), wantStatus: afc.StatusOpNotSupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := rawAFC(t, tc.cfg, tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Serve = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("connection ended: %v", err)
			}
			st, derr := afc.DecodeU64(p.Body())
			if p.Op != afc.OpStatus || derr != nil || afc.Status(st) != tc.wantStatus || p.Num != 1 {
				t.Fatalf("reply %+v, want status %d to packet 1", p, tc.wantStatus)
			}
		})
	}
}

func TestAFCRenameAndSeek(t *testing.T) {
	ctx := testCtx(t)
	fsys := NewAFCFS()
	c := dialAFC(t, ctx, AFCConfig{FS: fsys})
	if err := fsys.WriteFile("/d/a", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	p := afc.Packet{Num: 100, Op: afc.OpRenamePath, HeaderPayload: afc.EncodeStrings("/d/a", "/d/b")}
	reply := rawRoundTrip(t, c.conn, p)
	if st, _ := afc.DecodeU64(reply.Body()); reply.Op != afc.OpStatus || st != 0 {
		t.Fatalf("rename answered %+v", reply)
	}
	if fsys.Exists("/d/a") || !fsys.Exists("/d/b") {
		t.Fatal("rename did not move the file")
	}
	h, err := c.FileOpen(ctx, "/d/b", afc.ModeReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	seek := append(afc.EncodeHandleArg(h, 2), afc.U64(^uint64(2))...) // SEEK_END, -3
	if r := rawRoundTrip(t, c.conn, afc.Packet{Num: 101, Op: afc.OpFileSeek, HeaderPayload: seek}); r.Op != afc.OpStatus {
		t.Fatalf("seek answered %+v", r)
	}
	tell := rawRoundTrip(t, c.conn, afc.Packet{Num: 102, Op: afc.OpFileTell, HeaderPayload: afc.U64(h)})
	if pos, _ := afc.DecodeU64(tell.Body()); tell.Op != afc.OpFileTellResult || pos != 7 {
		t.Fatalf("tell answered %+v", tell)
	}
}

// rawRoundTrip sends p on a connection an afc.Client is not using at the
// moment and returns the reply, which must echo p's number.
func rawRoundTrip(t *testing.T, c net.Conn, p afc.Packet) afc.Packet {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if err := afc.WritePacket(c, p); err != nil {
		t.Fatal(err)
	}
	r, err := afc.ReadPacket(c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Num != p.Num {
		t.Fatalf("reply numbered %d to packet %d", r.Num, p.Num)
	}
	return r
}
