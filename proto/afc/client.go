package afc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// ReadChunk is how much FileRead asks for at a time in ReadFile; it is what
// libimobiledevice's backup tool asks for.
const ReadChunk = 64 << 10

// Client is the host side of one AFC connection. Its methods may be called
// from several goroutines; requests go out one at a time.
//
// If the connection has a SetDeadline method (a net.Conn does), every
// request honours its context's deadline and cancellation. Without one, a
// request blocks until the peer answers or the connection fails.
//
// After an I/O failure, a timeout or an answer to the wrong request, the
// stream may be out of step, so every later call fails fast; close the
// connection then, which also makes the device release the client's
// handles and locks.
type Client struct {
	mu     sync.Mutex
	rw     io.ReadWriter
	num    uint64
	broken error
}

type deadliner interface{ SetDeadline(time.Time) error }

// NewClient returns a client speaking AFC over rw, typically the net.Conn
// to the com.apple.afc service.
func NewClient(rw io.ReadWriter) *Client { return &Client{rw: rw} }

// roundTrip sends one request and reads its reply. A status reply other
// than success comes back as a *StatusError.
func (c *Client) roundTrip(ctx context.Context, op Opcode, args, data []byte) (Packet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken != nil {
		return Packet{}, fmt.Errorf("afc %s: connection unusable after an earlier failure: %w", op, c.broken)
	}
	if err := ctx.Err(); err != nil {
		return Packet{}, fmt.Errorf("afc %s: %w", op, err)
	}
	if d, ok := c.rw.(deadliner); ok {
		defer watchDeadline(ctx, d)()
	}
	c.num++
	req := Packet{Num: c.num, Op: op, HeaderPayload: args, Payload: data}
	if err := WritePacket(c.rw, req); err != nil {
		return Packet{}, c.fail(ctx, op, err)
	}
	reply, err := ReadPacket(c.rw, DefaultMaxPacket)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Packet{}, c.fail(ctx, op, err)
	}
	if reply.Num != req.Num {
		return Packet{}, c.fail(ctx, op, fmt.Errorf("reply numbered %d to request %d: %w", reply.Num, req.Num, ErrMalformed))
	}
	if reply.Op == OpStatus {
		st, err := DecodeU64(reply.Body())
		if err != nil {
			return Packet{}, fmt.Errorf("afc %s: status reply: %w", op, err)
		}
		if st != uint64(StatusSuccess) {
			return reply, &StatusError{Op: op, Status: Status(st)}
		}
	}
	return reply, nil
}

// fail marks the connection unusable and explains why, naming the
// context's error when it is what cut the request short.
func (c *Client) fail(ctx context.Context, op Opcode, err error) error {
	c.broken = err
	if cerr := ctxCause(ctx, err); cerr != nil {
		return fmt.Errorf("afc %s: %w: %w", op, cerr, err)
	}
	return fmt.Errorf("afc %s: %w", op, err)
}

// ctxCause returns ctx's error, or context.DeadlineExceeded when err is
// the connection timing out at ctx's deadline: the connection's timer can
// fire a moment before the context's own.
func ctxCause(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// isCtxErr reports whether err came from a context ending.
func isCtxErr(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// watchDeadline applies ctx's deadline to d, and cuts blocked I/O short
// when ctx is cancelled. The returned func undoes both; it waits for a
// cancellation already in flight so that it cannot land on a later request.
func watchDeadline(ctx context.Context, d deadliner) func() {
	dl, _ := ctx.Deadline()
	_ = d.SetDeadline(dl)
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = d.SetDeadline(time.Unix(1, 0))
	})
	return func() {
		if !stop() {
			<-fired
		}
		_ = d.SetDeadline(time.Time{})
	}
}

func expect(op Opcode, reply Packet, want Opcode) error {
	if reply.Op != want {
		return fmt.Errorf("afc %s: answered with %s, want %s: %w", op, reply.Op, want, ErrMalformed)
	}
	return nil
}

// FileOpen opens path on the device and returns its handle.
func (c *Client) FileOpen(ctx context.Context, path string, mode FileMode) (uint64, error) {
	reply, err := c.roundTrip(ctx, OpFileOpen, EncodeOpen(mode, path), nil)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	if err := expect(OpFileOpen, reply, OpFileOpenResult); err != nil {
		return 0, err
	}
	h, err := DecodeU64(reply.Body())
	if err != nil {
		return 0, fmt.Errorf("afc open %s: handle: %w", path, err)
	}
	return h, nil
}

// FileClose closes a handle, releasing any lock it holds.
func (c *Client) FileClose(ctx context.Context, handle uint64) error {
	return c.statusOp(ctx, OpFileClose, U64(handle), nil)
}

// Lock applies a flock-style operation to an open handle. A lock held by
// someone else answers an error that errors.Is ErrWouldBlock.
func (c *Client) Lock(ctx context.Context, handle uint64, op LockOp) error {
	return c.statusOp(ctx, OpFileLock, EncodeHandleArg(handle, uint64(op)), nil)
}

// FileRead reads up to n bytes from handle. At end of file it returns
// io.EOF.
func (c *Client) FileRead(ctx context.Context, handle uint64, n int) ([]byte, error) {
	if n <= 0 {
		return nil, nil
	}
	reply, err := c.roundTrip(ctx, OpFileRead, EncodeHandleArg(handle, uint64(n)), nil)
	if err != nil {
		return nil, err
	}
	if err := expect(OpFileRead, reply, OpData); err != nil {
		return nil, err
	}
	b := reply.Body()
	if len(b) == 0 {
		return nil, io.EOF
	}
	if len(b) > n {
		return nil, fmt.Errorf("afc FileRead: %d bytes for a read of %d: %w", len(b), n, ErrMalformed)
	}
	return b, nil
}

// FileWrite writes data at handle's position in one packet.
func (c *Client) FileWrite(ctx context.Context, handle uint64, data []byte) error {
	if HeaderSize+8+len(data) > DefaultMaxPacket {
		return fmt.Errorf("afc FileWrite of %d bytes: %w", len(data), ErrTooLarge)
	}
	return c.statusOp(ctx, OpFileWrite, U64(handle), data)
}

// FileInfo returns the device's description of path (st_size, st_ifmt,
// st_mtime, ...).
func (c *Client) FileInfo(ctx context.Context, path string) (map[string]string, error) {
	b, err := c.dataOp(ctx, OpGetFileInfo, CString(path))
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	m, err := ParseKeyValues(b)
	if err != nil {
		return nil, fmt.Errorf("afc stat %s: %w", path, err)
	}
	return m, nil
}

// DeviceInfo returns the device's file system facts (Model, FSTotalBytes,
// FSFreeBytes, FSBlockSize).
func (c *Client) DeviceInfo(ctx context.Context) (map[string]string, error) {
	b, err := c.dataOp(ctx, OpGetDeviceInfo, nil)
	if err != nil {
		return nil, err
	}
	m, err := ParseKeyValues(b)
	if err != nil {
		return nil, fmt.Errorf("afc device info: %w", err)
	}
	return m, nil
}

// ReadDir lists a directory, without "." and "..".
func (c *Client) ReadDir(ctx context.Context, path string) ([]string, error) {
	b, err := c.dataOp(ctx, OpReadDir, CString(path))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	var names []string
	for _, n := range SplitStrings(b) {
		if n != "" && n != "." && n != ".." {
			names = append(names, n)
		}
	}
	return names, nil
}

// MakeDir creates a directory and any missing parents.
func (c *Client) MakeDir(ctx context.Context, path string) error {
	if err := c.statusOp(ctx, OpMakeDir, CString(path), nil); err != nil {
		return fmt.Errorf("mkdir %s: %w", path, err)
	}
	return nil
}

// RemovePath removes a file or an empty directory. Devices answer
// "unknown error" for a directory that is not empty; that comes back as
// StatusDirNotEmpty, as libimobiledevice reports it.
func (c *Client) RemovePath(ctx context.Context, path string) error {
	err := c.statusOp(ctx, OpRemovePath, CString(path), nil)
	var se *StatusError
	if errors.As(err, &se) && se.Status == StatusUnknownError {
		err = &StatusError{Op: OpRemovePath, Status: StatusDirNotEmpty}
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// ReadFile reads a whole file of at most limit bytes.
func (c *Client) ReadFile(ctx context.Context, path string, limit int64) (data []byte, err error) {
	h, err := c.FileOpen(ctx, path, ModeReadOnly)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := c.FileClose(ctx, h); cerr != nil && err == nil {
			err = fmt.Errorf("close %s: %w", path, cerr)
		}
	}()
	for {
		b, err := c.FileRead(ctx, h, ReadChunk)
		if errors.Is(err, io.EOF) {
			return data, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if int64(len(data)+len(b)) > limit {
			return nil, fmt.Errorf("read %s: larger than %d bytes: %w", path, limit, ErrTooLarge)
		}
		data = append(data, b...)
	}
}

func (c *Client) statusOp(ctx context.Context, op Opcode, args, data []byte) error {
	reply, err := c.roundTrip(ctx, op, args, data)
	if err != nil {
		return err
	}
	return expect(op, reply, OpStatus)
}

func (c *Client) dataOp(ctx context.Context, op Opcode, args []byte) ([]byte, error) {
	reply, err := c.roundTrip(ctx, op, args, nil)
	if err != nil {
		return nil, err
	}
	if err := expect(op, reply, OpData); err != nil {
		return nil, err
	}
	return reply.Body(), nil
}

// SyncLock is the held sync lock of one connection.
type SyncLock struct {
	c      *Client
	handle uint64
}

// AcquireSyncLock opens /com.apple.itunes.lock_sync and takes its
// exclusive lock, retrying every retry interval while another client holds
// it, until ctx ends. If the lock is still held then, the error wraps both
// ctx's error and ErrWouldBlock: another tool (Finder, iTunes, a second
// backup) has the phone.
func (c *Client) AcquireSyncLock(ctx context.Context, retry time.Duration) (*SyncLock, error) {
	h, err := c.FileOpen(ctx, SyncLockPath, ModeReadWrite)
	if err != nil {
		return nil, fmt.Errorf("sync lock: %w", err)
	}
	var busy error // the last "would block" answer
	for {
		err := c.Lock(ctx, h, LockExclusive)
		switch {
		case err == nil:
			return &SyncLock{c: c, handle: h}, nil
		case errors.Is(err, ErrWouldBlock):
			busy = err
		case busy != nil && isCtxErr(err):
			// Time ran out mid-request while the lock was still held
			// elsewhere: that is the answer, not the timeout.
			c.closeDetached(ctx, h)
			return nil, fmt.Errorf("sync lock still held by another client: %w", errors.Join(err, busy))
		default:
			c.closeDetached(ctx, h)
			return nil, fmt.Errorf("sync lock: %w", err)
		}
		select {
		case <-time.After(retry):
		case <-ctx.Done():
			c.closeDetached(ctx, h)
			return nil, fmt.Errorf("sync lock still held by another client: %w: %w", ctx.Err(), busy)
		}
	}
}

// closeDetached closes a handle on a failure path, even when ctx is what
// failed: a handle left open on the device would keep its file busy.
func (c *Client) closeDetached(ctx context.Context, h uint64) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = c.FileClose(cctx, h)
}

// Release unlocks and closes the lock file.
func (l *SyncLock) Release(ctx context.Context) error {
	uerr := l.c.Lock(ctx, l.handle, LockUnlock)
	cerr := l.c.FileClose(ctx, l.handle)
	if err := errors.Join(uerr, cerr); err != nil {
		return fmt.Errorf("release sync lock: %w", err)
	}
	return nil
}
