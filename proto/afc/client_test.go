package afc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDevice answers each request with what handle returns; a nil reply
// means "never answer".
func fakeDevice(t *testing.T, handle func(Packet) *Packet) *Client {
	t.Helper()
	host, dev := net.Pipe()
	t.Cleanup(func() { host.Close(); dev.Close() })
	go func() {
		for {
			req, err := ReadPacket(dev, 0)
			if err != nil {
				return
			}
			reply := handle(req)
			if reply == nil {
				continue
			}
			if err := WritePacket(dev, *reply); err != nil {
				return
			}
		}
	}()
	return NewClient(host)
}

func TestClientOps(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		reply   func(req Packet) Packet
		call    func(c *Client) error
		wantErr error
	}{
		{
			name: "open returns the handle",
			reply: func(req Packet) Packet {
				mode, path, err := DecodeOpen(req.HeaderPayload)
				if err != nil || mode != ModeReadWrite || path != SyncLockPath {
					return StatusPacket(req.Num, StatusInvalidArg)
				}
				return Packet{Num: req.Num, Op: OpFileOpenResult, HeaderPayload: U64(42)}
			},
			call: func(c *Client) error {
				h, err := c.FileOpen(ctx, SyncLockPath, ModeReadWrite)
				if err == nil && h != 42 {
					return errors.New("wrong handle")
				}
				return err
			},
		},
		{
			name:    "open of a missing file",
			reply:   func(req Packet) Packet { return StatusPacket(req.Num, StatusObjectNotFound) },
			call:    func(c *Client) error { _, err := c.FileOpen(ctx, "/nope", ModeReadOnly); return err },
			wantErr: ErrNotFound,
		},
		{
			name:    "open answered with a status success",
			reply:   func(req Packet) Packet { return StatusPacket(req.Num, StatusSuccess) },
			call:    func(c *Client) error { _, err := c.FileOpen(ctx, "/x", ModeReadOnly); return err },
			wantErr: ErrMalformed,
		},
		{
			name: "lock sends handle and op",
			reply: func(req Packet) Packet {
				h, op, err := DecodeHandleArg(req.HeaderPayload)
				if err != nil || h != 42 || LockOp(op) != LockExclusive || req.Op != OpFileLock {
					return StatusPacket(req.Num, StatusInvalidArg)
				}
				return StatusPacket(req.Num, StatusSuccess)
			},
			call: func(c *Client) error { return c.Lock(ctx, 42, LockExclusive) },
		},
		{
			name:    "lock held elsewhere",
			reply:   func(req Packet) Packet { return StatusPacket(req.Num, StatusOpWouldBlock) },
			call:    func(c *Client) error { return c.Lock(ctx, 42, LockExclusive) },
			wantErr: ErrWouldBlock,
		},
		{
			name:    "reply to another packet number",
			reply:   func(req Packet) Packet { return StatusPacket(req.Num+1, StatusSuccess) },
			call:    func(c *Client) error { return c.FileClose(ctx, 1) },
			wantErr: ErrMalformed,
		},
		{
			name:    "status reply without a code",
			reply:   func(req Packet) Packet { return Packet{Num: req.Num, Op: OpStatus} },
			call:    func(c *Client) error { return c.FileClose(ctx, 1) },
			wantErr: ErrMalformed,
		},
		{
			name:    "remove answers unknown error for a full directory",
			reply:   func(req Packet) Packet { return StatusPacket(req.Num, StatusUnknownError) },
			call:    func(c *Client) error { return c.RemovePath(ctx, "/dir") },
			wantErr: ErrDirNotEmpty,
		},
		{
			name: "file info parses pairs",
			reply: func(req Packet) Packet {
				if PathArg(req.HeaderPayload) != "/f" {
					return StatusPacket(req.Num, StatusObjectNotFound)
				}
				return DataPacket(req.Num, EncodeStrings("st_size", "3", "st_ifmt", "S_IFREG"))
			},
			call: func(c *Client) error {
				m, err := c.FileInfo(ctx, "/f")
				if err == nil && (m["st_size"] != "3" || m["st_ifmt"] != "S_IFREG") {
					return errors.New("wrong info")
				}
				return err
			},
		},
		{
			name:  "read dir drops dot entries",
			reply: func(req Packet) Packet { return DataPacket(req.Num, EncodeStrings(".", "..", "a", "b")) },
			call: func(c *Client) error {
				names, err := c.ReadDir(ctx, "/")
				if err == nil && (len(names) != 2 || names[0] != "a" || names[1] != "b") {
					return errors.New("wrong names")
				}
				return err
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeDevice(t, func(p Packet) *Packet { r := tc.reply(p); return &r })
			err := tc.call(c)
			if tc.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestClientReadFile(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789"), 20000) // three and a bit chunks
	var pos int
	c := fakeDevice(t, func(req Packet) *Packet {
		var r Packet
		switch req.Op {
		case OpFileOpen:
			r = Packet{Num: req.Num, Op: OpFileOpenResult, HeaderPayload: U64(1)}
		case OpFileRead:
			_, n, _ := DecodeHandleArg(req.HeaderPayload)
			end := min(pos+int(n), len(content))
			r = DataPacket(req.Num, content[pos:end])
			pos = end
		default:
			r = StatusPacket(req.Num, StatusSuccess)
		}
		return &r
	})
	got, err := c.ReadFile(context.Background(), "/f", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("read %d bytes, want %d", len(got), len(content))
	}
}

func TestClientDeadline(t *testing.T) {
	c := fakeDevice(t, func(Packet) *Packet { return nil }) // never answers
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Lock(ctx, 1, LockExclusive)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	// The stream is out of step now; later calls must not wait again.
	if err := c.FileClose(context.Background(), 1); err == nil {
		t.Fatal("call after a timed-out request succeeded")
	}
}

func TestAcquireSyncLockTimesOutMidRequest(t *testing.T) {
	var n atomic.Int32
	c := fakeDevice(t, func(req Packet) *Packet {
		var r Packet
		switch {
		case req.Op == OpFileOpen:
			r = Packet{Num: req.Num, Op: OpFileOpenResult, HeaderPayload: U64(9)}
		case req.Op == OpFileLock && n.Add(1) == 1:
			r = StatusPacket(req.Num, StatusOpWouldBlock)
		default:
			return nil // the second attempt never gets an answer
		}
		return &r
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.AcquireSyncLock(ctx, time.Millisecond)
	if !errors.Is(err, ErrWouldBlock) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want would block and deadline exceeded", err)
	}
}

func TestClientCancel(t *testing.T) {
	c := fakeDevice(t, func(Packet) *Packet { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	if err := c.FileClose(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
}

func TestClientPeerHangsUp(t *testing.T) {
	host, dev := net.Pipe()
	defer host.Close()
	go func() {
		_, _ = ReadPacket(dev, 0)
		dev.Close()
	}()
	err := NewClient(host).FileClose(context.Background(), 1)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want unexpected EOF", err)
	}
}

func TestAcquireSyncLock(t *testing.T) {
	tests := []struct {
		name       string
		busyFor    int32 // lock requests answered 19 before granting; -1 = forever
		wantErr    error
		wantClosed bool
	}{
		{name: "granted at once", busyFor: 0},
		{name: "granted after retries", busyFor: 3},
		{name: "never granted", busyFor: -1, wantErr: ErrWouldBlock, wantClosed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var locks, unlocks, closes atomic.Int32
			c := fakeDevice(t, func(req Packet) *Packet {
				r := StatusPacket(req.Num, StatusSuccess)
				switch req.Op {
				case OpFileOpen:
					r = Packet{Num: req.Num, Op: OpFileOpenResult, HeaderPayload: U64(9)}
				case OpFileLock:
					_, op, _ := DecodeHandleArg(req.HeaderPayload)
					if LockOp(op) == LockUnlock {
						unlocks.Add(1)
						break
					}
					if n := locks.Add(1); tc.busyFor < 0 || n <= tc.busyFor {
						r = StatusPacket(req.Num, StatusOpWouldBlock)
					}
				case OpFileClose:
					closes.Add(1)
				}
				return &r
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			retry := 10 * time.Millisecond
			if tc.busyFor < 0 {
				// Give up while waiting between attempts, the usual case;
				// a long retry makes sure that is where the end lands.
				retry = time.Hour
				go func() {
					for locks.Load() == 0 {
						time.Sleep(time.Millisecond)
					}
					time.Sleep(50 * time.Millisecond)
					cancel()
				}()
			}
			l, err := c.AcquireSyncLock(ctx, retry)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !errors.Is(err, context.Canceled) {
					t.Fatalf("err = %v, want %v and canceled", err, tc.wantErr)
				}
				if closes.Load() != 1 {
					t.Fatalf("lock file closed %d times after giving up", closes.Load())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := locks.Load(); got != tc.busyFor+1 {
				t.Fatalf("%d lock attempts, want %d", got, tc.busyFor+1)
			}
			if err := l.Release(context.Background()); err != nil {
				t.Fatal(err)
			}
			if unlocks.Load() != 1 || closes.Load() != 1 {
				t.Fatalf("release sent %d unlocks, %d closes", unlocks.Load(), closes.Load())
			}
		})
	}
}

// FuzzClientReply feeds arbitrary device answers to every client call: the
// client must return, with an error or a result, and never panic.
func FuzzClientReply(f *testing.F) {
	f.Add(uint8(0), Packet{Num: 1, Op: OpFileOpenResult, HeaderPayload: U64(1)}.Encode())
	f.Add(uint8(1), StatusPacket(1, StatusOpWouldBlock).Encode())
	f.Add(uint8(2), DataPacket(1, []byte("a\x00b\x00")).Encode())
	f.Add(uint8(3), DataPacket(1, []byte("abc")).Encode())
	f.Add(uint8(4), []byte("garbage"))
	f.Fuzz(func(t *testing.T, which uint8, reply []byte) {
		host, dev := net.Pipe()
		defer host.Close()
		go func() {
			defer dev.Close()
			if _, err := ReadPacket(dev, 0); err != nil {
				return
			}
			_, _ = dev.Write(reply)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c := NewClient(host)
		switch which % 6 {
		case 0:
			_, _ = c.FileOpen(ctx, "/f", ModeReadOnly)
		case 1:
			_ = c.Lock(ctx, 1, LockExclusive)
		case 2:
			_, _ = c.ReadDir(ctx, "/")
		case 3:
			_, _ = c.FileRead(ctx, 1, 16)
		case 4:
			_, _ = c.FileInfo(ctx, "/f")
		case 5:
			_, _ = c.DeviceInfo(ctx)
		}
	})
}
