package backup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/wire"
)

// The files of one UploadFiles round are stored by worker goroutines
// while the session goes on reading the stream. Creating a file is the
// costliest step for small files (a journal transaction on ext4, about
// 100 µs), and two creations in different directories run in parallel;
// for large files the disk writes overlap with the transfer.
//
// Memory stays bounded: the stream is read into a fixed set of buffers
// that the workers hand back once written. Each round ends with every
// worker done, before the status response goes out, so everything after
// it (moves, removals, the commit) sees a quiescent staging tree.
const (
	uploadWorkers = 2
	uploadChunk   = 256 << 10
	uploadBufs    = 8  // 2 MiB in flight at most
	uploadQueue   = 64 // operations waiting for one worker
	drainBufSize  = 64 << 10
)

type storeKind int

const (
	storeCreate  storeKind = iota // start a new file at path
	storeData                     // append buf
	storeEnd                      // the file is complete: keep it
	storeAbort                    // the file is incomplete: remove it
	storeHandoff                  // hand the open file to the session
)

type storeOp struct {
	kind      storeKind
	path, raw string        // clean and as the device sent it (create)
	buf       []byte        // data
	handoff   chan *newFile // handoff: where the open file (nil: none) goes
}

// uploadRound is the workers of one round.
type uploadRound struct {
	root   *os.Root
	queues []chan storeOp
	free   chan []byte
	wg     sync.WaitGroup
	failed atomic.Bool

	mu    sync.Mutex
	first error  // the first file that could not be stored
	raw   string // its path, as the device sent it
	fatal error  // the first failure that dooms the backup (full disk)
}

func (s *session) startRound() *uploadRound {
	if s.bufs == nil {
		for range uploadBufs {
			s.bufs = append(s.bufs, make([]byte, uploadChunk))
		}
	}
	// The workers may replace what the session's cached directories
	// name (an empty directory by a file).
	s.fs.dropDirs()
	r := &uploadRound{root: s.fs.root, free: make(chan []byte, len(s.bufs))}
	for _, b := range s.bufs {
		r.free <- b
	}
	for range uploadWorkers {
		q := make(chan storeOp, uploadQueue)
		r.queues = append(r.queues, q)
		r.wg.Add(1)
		go r.work(q)
	}
	return r
}

// end stops the workers once they have done everything queued, and
// returns the buffers to the session.
func (r *uploadRound) end(s *session) {
	for _, q := range r.queues {
		close(q)
	}
	r.wg.Wait()
	s.bufs = s.bufs[:0]
	for len(r.free) > 0 {
		s.bufs = append(s.bufs, <-r.free)
	}
}

// queue returns the worker for path. Files of one directory go to one
// worker, so two workers do not contend for a directory's lock, and two
// uploads of one path keep their order.
func (r *uploadRound) queue(path string) chan storeOp {
	d, _ := split(path)
	h := uint32(2166136261)
	for i := 0; i < len(d); i++ {
		h = (h ^ uint32(d[i])) * 16777619
	}
	return r.queues[h%uint32(len(r.queues))]
}

func (r *uploadRound) fail(raw string, err error) {
	r.mu.Lock()
	if r.first == nil {
		r.first, r.raw = err, raw
	}
	if r.fatal == nil && isHostFatal(err) {
		r.fatal = fmt.Errorf("store %s: %w", raw, err)
	}
	r.mu.Unlock()
	r.failed.Store(true)
}

func (r *uploadRound) work(q chan storeOp) {
	defer r.wg.Done()
	dc := newDirCache(r.root)
	defer dc.dropDirs()
	var cur *newFile
	var raw string
	for op := range q {
		switch op.kind {
		case storeCreate:
			raw = op.raw
			if r.failed.Load() {
				continue // the device will hear the round failed
			}
			nf, err := dc.create(op.path)
			if err != nil {
				r.fail(raw, err)
				continue
			}
			cur = nf
		case storeData:
			if cur != nil {
				if _, err := cur.Write(op.buf); err != nil {
					cur.discard()
					cur = nil
					r.fail(raw, err)
				}
			}
			r.free <- op.buf[:cap(op.buf)]
		case storeEnd:
			if cur != nil {
				if err := cur.commit(); err != nil {
					r.fail(raw, err)
				}
				cur = nil
			}
		case storeAbort:
			if cur != nil {
				cur.discard()
				cur = nil
			}
		case storeHandoff:
			op.handoff <- cur
			cur = nil
		}
	}
	if cur != nil {
		cur.discard()
	}
}

// uploadFiles receives the files of one UploadFiles round into staging.
func (s *session) uploadFiles(msg []any) error {
	s.setProgress(msg, 2)
	// The round's announced size is the phone's estimate and bounds
	// nothing (diskguard.go); it is kept for the log.
	announced := int64(-1)
	if len(msg) > 3 {
		if total, ok := wire.Uint(msg[3]); ok && total < 1<<62 {
			announced = int64(total)
		}
	}
	var round *uploadRound
	if s.fs != nil {
		round = s.startRound()
		if s.disk == nil {
			s.disk = newDiskGuard(s.freeDir, s.opts.FreeSpaceMargin)
		}
	}
	fr := s.dl.NewFileReader(devicelink.Upload)
	var roundBytes int64
	var refused, readErr error
	for {
		h, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = s.ioError("UploadFiles", err)
			break
		}
		s.upName = h.DeviceName
		clean, perr := devicePath(devicelink.MsgUploadFiles, h.Path, DefaultMaxPathLen, false)
		if perr == nil && round == nil {
			perr = escape(devicelink.MsgUploadFiles, h.Path, "no backup directory in this request")
		}
		if perr != nil && refused == nil {
			// Nothing more of this round is stored. The rest of it is read
			// (within the round's bound) only so that the refusal can be
			// answered in step; then the exchange ends.
			s.log.Warn("mobilebackup2: refused a hostile upload", "err", perr)
			refused = perr
		}
		if err := s.budget.create(); err != nil {
			// Empty files cost no bytes, so neither the free-space guard nor
			// the stall timeout would end a flood of them (even one being
			// drained): the exchange ends here.
			s.hostFailure("UploadFiles "+h.Path, err)
			readErr = fmt.Errorf("UploadFiles %s: %w", h.Path, err)
			break
		}
		limit := s.opts.MaxFileSize
		var n int64
		if refused != nil || round.failed.Load() {
			// A file failed: read past the rest, so the device hears
			// about the failure at the end of the round.
			n, err = s.drain(fr, h.Path, limit)
		} else {
			n, err = s.receive(fr, round, clean, h.Path, limit)
		}
		roundBytes += n
		if err != nil {
			readErr = err
			break
		}
	}
	var code int64
	var desc string
	if round != nil {
		round.end(s)
		if round.fatal != nil {
			s.hostFailure("UploadFiles", round.fatal)
		}
		if round.first != nil {
			if isRootEscape(round.first) {
				if refused == nil {
					refused = escape(devicelink.MsgUploadFiles, round.raw, "leaves the backup directory through a symbolic link")
					s.log.Warn("mobilebackup2: refused a hostile upload", "err", refused)
				}
			} else {
				code, desc = dlCode(round.first), errText(round.first)
				s.log.Debug("mobilebackup2: cannot store an uploaded file", "path", round.raw, "err", round.first)
			}
		}
	}
	if readErr != nil {
		return readErr
	}
	if announced >= 0 && roundBytes > announced {
		s.log.Debug("mobilebackup2: the device sent more than it announced", "announced", announced, "sent", roundBytes)
	}
	if refused != nil {
		code, desc = devicelink.CodeGeneric, "Path outside the backup directory"
	}
	s.report(true)
	if err := s.status(code, desc, map[string]any{}); err != nil {
		return errors.Join(refused, err)
	}
	return refused
}

// receive reads one file of the stream and queues it for a worker. n
// counts the bytes read; err is set when the exchange must end. A file
// larger than directAfter goes on in receiveDirect.
func (s *session) receive(fr *devicelink.FileReader, round *uploadRound, clean, raw string, limit int64) (n int64, err error) {
	q := round.queue(clean)
	q <- storeOp{kind: storeCreate, path: clean, raw: raw}
	var rerr error
	for rerr == nil {
		if n >= directAfter {
			return s.receiveDirect(fr, round, q, raw, n, limit)
		}
		buf := <-round.free
		var m int
		m, rerr = readFull(fr, buf)
		n += int64(m)
		if n > limit {
			round.free <- buf
			q <- storeOp{kind: storeAbort}
			return n, s.errTooMuch(raw, limit)
		}
		if gerr := s.disk.received(int64(m)); gerr != nil {
			// Nothing more of this round is stored; the device hears
			// ENOSPC at its end, as from a full disk.
			round.free <- buf
			q <- storeOp{kind: storeAbort}
			round.fail(raw, gerr)
			if rerr != nil {
				return n, nil
			}
			d, err := s.drain(fr, raw, limit-n)
			return n + d, err
		}
		if m > 0 {
			q <- storeOp{kind: storeData, buf: buf[:m]}
		} else {
			round.free <- buf
		}
		if rerr == nil {
			s.bytesProgress(n)
		}
	}
	read, err := s.fileEnd(raw, rerr)
	if err != nil {
		q <- storeOp{kind: storeAbort}
		return n, err
	}
	q <- storeOp{kind: storeEnd}
	s.fileDone(n, read)
	return n, nil
}

// directAfter is the size past which the rest of a file is written by
// the goroutine that reads it. Handing each chunk to a worker overlaps
// creations, which is what small files need, but a worker on another
// core then copies every byte from memory rather than from the cache it
// was just read into: for large files that doubled the system CPU per
// byte. A file this large costs one wait for its worker's queue, little
// beside its transfer.
const directAfter = 1 << 20

// receiveDirect reads and writes the rest of a large file, n bytes of
// which its worker has queued: the worker writes those, then hands the
// open file over. A failure to write keeps reading the file to its end,
// as the workers do, so that the device hears of it at the round's end.
func (s *session) receiveDirect(fr *devicelink.FileReader, round *uploadRound, q chan storeOp, raw string, n, limit int64) (int64, error) {
	ch := make(chan *newFile, 1)
	q <- storeOp{kind: storeHandoff, handoff: ch}
	nf := <-ch // nil: the file could not be created; the round failed
	buf := <-round.free
	defer func() { round.free <- buf }()
	var rerr error
	for rerr == nil {
		var m int
		m, rerr = readFull(fr, buf)
		n += int64(m)
		if n > limit {
			if nf != nil {
				nf.discard()
			}
			return n, s.errTooMuch(raw, limit)
		}
		if gerr := s.disk.received(int64(m)); gerr != nil {
			// As in receive: nothing more of this round is stored.
			if nf != nil {
				nf.discard()
			}
			round.fail(raw, gerr)
			if rerr != nil {
				return n, nil
			}
			d, err := s.drain(fr, raw, limit-n)
			return n + d, err
		}
		if nf != nil && m > 0 {
			if _, err := nf.Write(buf[:m]); err != nil {
				nf.discard()
				nf = nil
				round.fail(raw, err)
			}
		}
		if rerr == nil {
			s.bytesProgress(n)
		}
	}
	read, err := s.fileEnd(raw, rerr)
	if err != nil {
		if nf != nil {
			nf.discard()
		}
		return n, err
	}
	if nf != nil {
		if err := nf.commit(); err != nil {
			round.fail(raw, err)
		}
	}
	s.fileDone(n, read)
	return n, nil
}

// fileEnd weighs how a file's content ended: nil for its end (io.EOF, or
// the device's error block), else the error that ends the exchange. read
// is false for a file the device could not read (an error block alone).
func (s *session) fileEnd(raw string, rerr error) (read bool, err error) {
	var rfe *devicelink.RemoteFileError
	switch {
	case rerr == io.EOF:
	case errors.As(rerr, &rfe):
		// An error block after content is some devices' way to end a
		// file; without content the device could not read the file.
		// libimobiledevice keeps the file either way, and so does the
		// device's later MoveItems.
		if !rfe.AfterData {
			s.couldNotRead(s.upName, raw, rfe.Message)
			return false, nil
		}
	default:
		return false, s.ioError("UploadFiles "+raw, rerr)
	}
	return true, nil
}

// fileDone counts a file that ended; one the device could not read
// (read false) is not a file received.
func (s *session) fileDone(n int64, read bool) {
	if read {
		s.files++
	}
	s.bytes += n
	s.report(false)
}

// readFull fills buf from the current file, stopping early only at the
// file's end (io.EOF, a *RemoteFileError) or on an error.
func readFull(fr *devicelink.FileReader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := fr.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// bytesProgress reports progress inside a large file.
func (s *session) bytesProgress(inFile int64) {
	if s.onProg == nil {
		return
	}
	saved := s.bytes
	s.bytes += inFile
	s.report(false)
	s.bytes = saved
}

// drain reads past the current file without storing it.
func (s *session) drain(fr *devicelink.FileReader, raw string, limit int64) (int64, error) {
	if s.drainBuf == nil {
		s.drainBuf = make([]byte, drainBufSize)
	}
	var n int64
	for {
		m, err := fr.Read(s.drainBuf)
		n += int64(m)
		if n > limit {
			return n, s.errTooMuch(raw, limit)
		}
		var rfe *devicelink.RemoteFileError
		switch {
		case err == nil:
		case err == io.EOF, errors.As(err, &rfe):
			return n, nil
		default:
			return n, s.ioError("UploadFiles "+raw, err)
		}
	}
}

// errTooMuch is a device sending a file over the largest one allowed.
func (s *session) errTooMuch(p string, limit int64) error {
	return cause.New(cause.ProtocolError, fmt.Errorf(
		"%w: UploadFiles %q: the device sent more than %d bytes in one file, the most a file may have",
		ErrHostile, p, limit))
}
