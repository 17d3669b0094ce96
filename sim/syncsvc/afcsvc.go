package syncsvc

import (
	"context"
	"encoding/binary"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/backupd/backupd/proto/afc"
)

// Bounds on one AFC connection.
const (
	// maxReadChunk caps one FileRead answer, as a device does; hosts loop.
	maxReadChunk = 1 << 20
	// maxOpenFiles caps the handles one connection may hold.
	maxOpenFiles = 256
	// lockPoll is how often a blocking lock request looks again.
	lockPoll = 20 * time.Millisecond
)

// AFCConfig configures one com.apple.afc connection.
type AFCConfig struct {
	// FS is the device's file system. Nil gives the connection a fresh
	// one nobody else sees.
	FS *AFCFS
	// LockNeverGranted makes every lock request answer "would block", as
	// when another tool (Finder, iTunes, a second backup) holds the phone.
	LockNeverGranted bool
	// MaxPacket bounds one request, header included; 0 means
	// afc.DefaultMaxPacket.
	MaxPacket int
	// Model is GetDeviceInfo's Model; empty means "iPhone14,2".
	Model string
}

type afcSession struct {
	cfg   AFCConfig
	fs    *AFCFS
	files map[uint64]*openFile
	next  uint64
}

// ServeAFC serves com.apple.afc on conn over cfg.FS: directories, file
// info, open/read/write/seek/tell/truncate/close, rename, remove, device
// info and flock-style locks, which is what backup tools use — above all
// the exclusive lock on /com.apple.itunes.lock_sync that says a sync is
// under way. Handles are per connection; when the connection ends its
// files close and their locks are released.
//
// A request that is framed wrongly or exceeds the limit ends the
// connection with an error. A well-framed request with bad arguments gets
// an error status and the connection goes on, as with a device.
func ServeAFC(ctx context.Context, conn net.Conn, cfg AFCConfig) error {
	const service = "afc"
	defer own(ctx, conn)()
	s := &afcSession{cfg: cfg, fs: cfg.FS, files: map[uint64]*openFile{}}
	if s.fs == nil {
		s.fs = NewAFCFS()
	}
	if s.cfg.Model == "" {
		s.cfg.Model = "iPhone14,2"
	}
	defer s.closeAll()
	for {
		req, err := afc.ReadPacket(conn, cfg.MaxPacket)
		if err != nil {
			return ended(ctx, service, err)
		}
		reply := s.handle(ctx, req)
		reply.Num = req.Num
		if err := afc.WritePacket(conn, reply); err != nil {
			return ended(ctx, service, err)
		}
	}
}

func (s *afcSession) closeAll() {
	s.fs.mu.Lock()
	defer s.fs.mu.Unlock()
	for h, f := range s.files {
		s.fs.closeFile(f)
		delete(s.files, h)
	}
}

func status(st afc.Status) afc.Packet { return afc.StatusPacket(0, st) }

// handle answers one request. Packet numbers are filled in by the caller.
func (s *afcSession) handle(ctx context.Context, req afc.Packet) afc.Packet {
	args := req.HeaderPayload
	if req.Op == afc.OpFileLock {
		// Locking may wait, so it takes the file system lock itself.
		return s.fileLock(ctx, args)
	}
	fsys := s.fs
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	switch req.Op {
	case afc.OpGetDeviceInfo:
		return afc.DataPacket(0, afc.EncodeStrings(
			"Model", s.cfg.Model,
			"FSTotalBytes", strconv.FormatInt(fsys.capacity, 10),
			"FSFreeBytes", strconv.FormatInt(max(fsys.capacity-fsys.used, 0), 10),
			"FSBlockSize", "4096",
		))
	case afc.OpReadDir:
		n := fsys.lookup(afc.PathArg(args))
		switch {
		case n == nil:
			return status(afc.StatusObjectNotFound)
		case !n.dir:
			return status(afc.StatusReadError)
		}
		names := []string{".", ".."}
		for name := range n.children {
			names = append(names, name)
		}
		slices.Sort(names[2:])
		return afc.DataPacket(0, afc.EncodeStrings(names...))
	case afc.OpGetFileInfo:
		n := fsys.lookup(afc.PathArg(args))
		if n == nil {
			return status(afc.StatusObjectNotFound)
		}
		return afc.DataPacket(0, afc.EncodeStrings(infoStrings(n)...))
	case afc.OpMakeDir:
		return status(fsys.mkdirAll(afc.PathArg(args)))
	case afc.OpRemovePath:
		return status(fsys.remove(afc.PathArg(args), false))
	case afc.OpRemovePathAndContents:
		return status(fsys.remove(afc.PathArg(args), true))
	case afc.OpRenamePath:
		from, to, err := afc.DecodeTwoPaths(args)
		if err != nil {
			return status(afc.StatusInvalidArg)
		}
		return status(fsys.rename(from, to))
	case afc.OpTruncate:
		size, err := afc.DecodeU64(args)
		if err != nil {
			return status(afc.StatusInvalidArg)
		}
		n := fsys.lookup(afc.PathArg(args[8:]))
		switch {
		case n == nil:
			return status(afc.StatusObjectNotFound)
		case n.dir:
			return status(afc.StatusObjectIsDir)
		case size > uint64(fsys.capacity):
			return status(afc.StatusNoSpaceLeft)
		}
		return status(fsys.resize(n, int64(size)))
	case afc.OpSetFileModTime:
		ns, err := afc.DecodeU64(args)
		if err != nil {
			return status(afc.StatusInvalidArg)
		}
		n := fsys.lookup(afc.PathArg(args[8:]))
		if n == nil {
			return status(afc.StatusObjectNotFound)
		}
		n.mtime = time.Unix(0, int64(ns))
		return status(afc.StatusSuccess)
	case afc.OpFileOpen:
		return s.fileOpen(args)
	case afc.OpFileRead:
		h, n, err := afc.DecodeHandleArg(args)
		if err != nil {
			return status(afc.StatusInvalidArg)
		}
		f := s.files[h]
		switch {
		case f == nil:
			return status(afc.StatusInvalidArg)
		case !f.read:
			return status(afc.StatusPermDenied)
		}
		size := int64(len(f.node.data))
		if f.pos >= size {
			return afc.DataPacket(0, nil)
		}
		end := f.pos + int64(min(n, maxReadChunk))
		if end > size {
			end = size
		}
		data := slices.Clone(f.node.data[f.pos:end])
		f.pos = end
		return afc.DataPacket(0, data)
	case afc.OpFileWrite:
		h, err := afc.DecodeU64(args)
		if err != nil {
			return status(afc.StatusInvalidArg)
		}
		// Hosts put the data in the payload; a sender that puts it in the
		// header payload after the handle means the same thing.
		data := req.Body()[8:]
		return status(s.fileWrite(h, data))
	case afc.OpFileSeek:
		if len(args) < 24 {
			return status(afc.StatusInvalidArg)
		}
		f := s.files[binary.LittleEndian.Uint64(args)]
		if f == nil {
			return status(afc.StatusInvalidArg)
		}
		whence := binary.LittleEndian.Uint64(args[8:])
		off := int64(binary.LittleEndian.Uint64(args[16:]))
		var base int64
		switch whence {
		case 0: // SEEK_SET
		case 1: // SEEK_CUR
			base = f.pos
		case 2: // SEEK_END
			base = int64(len(f.node.data))
		default:
			return status(afc.StatusInvalidArg)
		}
		pos := base + off
		if pos < 0 || (off > 0 && pos < base) {
			return status(afc.StatusInvalidArg)
		}
		f.pos = pos
		return status(afc.StatusSuccess)
	case afc.OpFileTell:
		h, err := afc.DecodeU64(args)
		if err != nil || s.files[h] == nil {
			return status(afc.StatusInvalidArg)
		}
		return afc.Packet{Op: afc.OpFileTellResult, HeaderPayload: afc.U64(uint64(s.files[h].pos))}
	case afc.OpFileSetSize:
		h, size, err := afc.DecodeHandleArg(args)
		if err != nil {
			return status(afc.StatusInvalidArg)
		}
		f := s.files[h]
		switch {
		case f == nil:
			return status(afc.StatusInvalidArg)
		case !f.write:
			return status(afc.StatusPermDenied)
		case size > uint64(fsys.capacity):
			return status(afc.StatusNoSpaceLeft)
		}
		return status(fsys.resize(f.node, int64(size)))
	case afc.OpFileClose:
		h, err := afc.DecodeU64(args)
		if err != nil || s.files[h] == nil {
			return status(afc.StatusInvalidArg)
		}
		fsys.closeFile(s.files[h])
		delete(s.files, h)
		return status(afc.StatusSuccess)
	default:
		return status(afc.StatusOpNotSupported)
	}
}

// fileOpen applies the fopen(3) meaning of each AFC mode.
func (s *afcSession) fileOpen(args []byte) afc.Packet {
	mode, p, err := afc.DecodeOpen(args)
	if err != nil {
		return status(afc.StatusInvalidArg)
	}
	f := &openFile{path: cleanPath(p)}
	var create, trunc bool
	switch mode {
	case afc.ModeReadOnly:
		f.read = true
	case afc.ModeReadWrite:
		f.read, f.write, create = true, true, true
	case afc.ModeWriteOnly:
		f.write, create, trunc = true, true, true
	case afc.ModeWriteRead:
		f.read, f.write, create, trunc = true, true, true, true
	case afc.ModeAppend:
		f.write, f.appendTo, create = true, true, true
	case afc.ModeReadAppend:
		f.read, f.write, f.appendTo, create = true, true, true, true
	default:
		return status(afc.StatusInvalidArg)
	}
	if len(s.files) >= maxOpenFiles {
		return status(afc.StatusNoResources)
	}
	fsys := s.fs
	n := fsys.lookup(p)
	switch {
	case n == nil && !create:
		return status(afc.StatusObjectNotFound)
	case n == nil:
		var st afc.Status
		if n, st = fsys.create(p); st != afc.StatusSuccess {
			return status(st)
		}
	case n.dir:
		return status(afc.StatusObjectIsDir)
	}
	if trunc {
		if st := fsys.resize(n, 0); st != afc.StatusSuccess {
			return status(st)
		}
		n.mtime = time.Now()
	}
	fsys.open(f, n)
	// Handle 0 means "no file" to libimobiledevice, so numbering starts
	// at 1.
	s.next++
	s.files[s.next] = f
	return afc.Packet{Op: afc.OpFileOpenResult, HeaderPayload: afc.U64(s.next)}
}

func (s *afcSession) fileWrite(h uint64, data []byte) afc.Status {
	f := s.files[h]
	switch {
	case f == nil:
		return afc.StatusInvalidArg
	case !f.write:
		return afc.StatusPermDenied
	}
	n := f.node
	if f.appendTo {
		f.pos = int64(len(n.data))
	}
	end := f.pos + int64(len(data))
	if end > int64(len(n.data)) {
		if st := s.fs.resize(n, end); st != afc.StatusSuccess {
			return st
		}
	}
	copy(n.data[f.pos:], data)
	f.pos = end
	n.mtime = time.Now()
	return afc.StatusSuccess
}

// fileLock applies a lock request. A blocking request (without
// LockBitNonBlock) waits for the lock as flock(2) would, until the
// connection's context ends.
func (s *afcSession) fileLock(ctx context.Context, args []byte) afc.Packet {
	h, v, err := afc.DecodeHandleArg(args)
	if err != nil {
		return status(afc.StatusInvalidArg)
	}
	op := afc.LockOp(v)
	for {
		st := s.tryLock(h, op)
		if st != afc.StatusOpWouldBlock || op&afc.LockBitNonBlock != 0 || s.cfg.LockNeverGranted {
			return status(st)
		}
		select {
		case <-ctx.Done():
			return status(afc.StatusOpInterrupted)
		case <-time.After(lockPoll):
		}
	}
}

func (s *afcSession) tryLock(h uint64, op afc.LockOp) afc.Status {
	s.fs.mu.Lock()
	defer s.fs.mu.Unlock()
	f := s.files[h]
	if f == nil {
		return afc.StatusInvalidArg
	}
	if s.cfg.LockNeverGranted && op&afc.LockBitUnlock == 0 {
		return afc.StatusOpWouldBlock
	}
	return s.fs.lock(f, op)
}
