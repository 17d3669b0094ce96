package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/wire"
)

// Protocol versions of mobilebackup2 we offer in Hello.
var helloVersions = []any{2.0, 2.1}

// ErrCancelledByDevice: the phone posted syncCancelRequest (someone
// cancelled the sync on it), so the backup was stopped.
var ErrCancelledByDevice = errors.New("the iPhone cancelled the backup")

// errDeviceDisconnect: the device ended the session with
// DLMessageDisconnect before it reported a result.
var errDeviceDisconnect = errors.New("the device ended the session without a result")

// Sizes of the buffers a session owns. Each exists once per session, so
// the engine's memory does not grow with the backup.
const (
	// copyBufSize is the buffer CopyItem copies through.
	copyBufSize = 256 << 10
	// downloadBlock is the content size of a block sent to the device:
	// libimobiledevice's size, which every iOS version accepts.
	downloadBlock = 32 << 10
	// maxIncomingMessage bounds one DeviceLink message from the device.
	// The biggest, a MoveItems batch, is a few MiB.
	maxIncomingMessage = 32 << 20
	// maxIncomingBlock bounds one block of an uploaded file; devices use
	// up to a few hundred KiB.
	maxIncomingBlock = 8 << 20
	// progressEvery throttles progress reports within one message.
	progressEvery = 100 * time.Millisecond
)

// deviceResult is the device's final Response.
type deviceResult struct {
	Code int
	Text string
}

// session is one mobilebackup2 exchange: handshake, one request, and the
// device's DL* requests answered until its final Response.
type session struct {
	opts Options
	log  *slog.Logger
	link *link
	dl   *devicelink.Conn
	// fs is the staging root; nil for a request that names no files
	// (ChangePassword), whose file requests are all refused.
	fs *stagingFS
	// freeDir is where free space is measured.
	freeDir string
	// src, set in a restore, is the backup the phone's files come from;
	// the restore then answers every message itself (restore.go).
	src    *restoreFS
	onProg func(Progress)
	// onFirst, if set, runs when the device's first message after the
	// request arrives.
	onFirst func()

	files, bytes int64
	percent      float64
	lastReport   time.Time
	// quiet: the host waits for the device in a phase where a long
	// silence is normal (liveness.go), and has said so in the progress.
	quiet bool

	// hostErr is the first local failure that means this host cannot
	// hold the backup (a full or read-only disk); the run fails with it
	// whatever the device reports.
	hostErr error
	final   *deviceResult

	// unreadable are the files the device sent as an error block alone
	// (unreadable.go); upName is the device's name for the file being
	// received.
	unreadable unreadableFiles
	upName     string

	// budget counts the files and directories the device creates; nil
	// without a staging.
	budget *budget

	disk     *diskGuard // free space while uploads stream (diskguard.go)
	bufs     [][]byte   // upload buffers, lent to a round's workers
	drainBuf []byte
	fw       *devicelink.FileWriter
}

func newSession(conn net.Conn, opts Options, fs *stagingFS, freeDir string, onProg func(Progress)) *session {
	l := newLink(conn, opts.StallTimeout)
	dl := devicelink.NewConn(l)
	dl.MaxMessage = maxIncomingMessage
	dl.MaxBlock = maxIncomingBlock
	s := &session{opts: opts, log: opts.Logger, link: l, dl: dl, fs: fs, freeDir: freeDir, onProg: onProg}
	if fs != nil {
		s.budget = newBudget(freeDir, opts.MaxFiles)
	}
	return s
}

// watch closes the connection when ctx ends, so that a blocked read
// returns at once. The returned func stops watching.
func (s *session) watch(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() { s.link.abort(context.Cause(ctx)) })
}

// handshake runs the DeviceLink version exchange and Hello.
func (s *session) handshake() error {
	s.link.setTimeout(s.opts.StallTimeout)
	v, err := s.dl.HostVersionExchange()
	if errors.Is(err, devicelink.ErrUnsupportedVersion) {
		s.dl.Disconnect("")
		return cause.New(cause.IOSUnsupported, fmt.Errorf("mobilebackup2: %w", err))
	}
	if err != nil {
		return s.ioError("version exchange", err)
	}
	s.log.Debug("mobilebackup2 version exchange", "major", v.Major, "minor", v.Minor)
	if err := s.dl.SendProcessMessage(map[string]any{
		devicelink.KeyMessageName:   "Hello",
		"SupportedProtocolVersions": helloVersions,
	}); err != nil {
		return s.ioError("Hello", err)
	}
	resp, err := s.dl.ReadProcessMessage()
	if err != nil {
		return s.ioError("Hello response", err)
	}
	code, ok := wire.Int(resp["ErrorCode"])
	if !ok {
		return cause.Errorf(cause.ProtocolError, "mobilebackup2 Hello response without an ErrorCode: %.200v", resp)
	}
	if code != 0 {
		// 1: no protocol version in common.
		return cause.Errorf(cause.IOSUnsupported, "mobilebackup2 Hello: the device answered ErrorCode %d (it speaks none of versions 2.0, 2.1)", code)
	}
	pv, _ := wire.Real(resp["ProtocolVersion"])
	s.log.Debug("mobilebackup2 protocol", "version", pv)
	return nil
}

// request sends one request (Backup, ChangePassword) and serves the
// device until its final Response. It returns the device's result, or
// the error that ended the exchange; a device that reports failure is not
// an error here.
func (s *session) request(req map[string]any) (*deviceResult, error) {
	if err := s.dl.SendProcessMessage(req); err != nil {
		return nil, s.ioError("send "+fmt.Sprint(req[devicelink.KeyMessageName]), err)
	}
	s.link.setTimeout(s.opts.FirstMessageTimeout)
	s.await(preparing)
	first, uploaded, downloaded := true, false, false
	for s.final == nil {
		before := s.link.nread
		name, msg, err := s.dl.ReadMessage()
		if err != nil {
			if isTimeout(err) && s.link.aborted() == nil && s.link.nread > before {
				// Devices write a message in one go; one that starts and
				// never ends is not a slow device but a broken one.
				return nil, cause.New(cause.ProtocolError, fmt.Errorf(
					"%w: the device stopped in the middle of a message: %w", devicelink.ErrProtocol, err))
			}
			if se := (*silenceError)(nil); errors.As(err, &se) && s.link.aborted() == nil {
				return nil, cause.New(cause.Stalled, err)
			}
			if first && isTimeout(err) && s.link.aborted() == nil {
				return nil, cause.New(cause.Stalled, fmt.Errorf(
					"the iPhone sent nothing for %v after the %s request (since iOS 16.1 it waits for its passcode first): %w",
					s.opts.FirstMessageTimeout, strings.ToLower(fmt.Sprint(req[devicelink.KeyMessageName])), err))
			}
			return nil, s.ioError("waiting for the device", err)
		}
		s.await(busy)
		if first {
			first = false
			s.link.setTimeout(s.opts.StallTimeout)
			if s.onFirst != nil {
				s.onFirst()
			}
		}
		done, err := s.dispatch(name, msg)
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
		if s.src != nil {
			downloaded = downloaded || name == devicelink.MsgDownloadFiles
			s.await(restorePhaseAfter(name, downloaded, s.src.slowAfterDownload()))
		} else {
			uploaded = uploaded || name == devicelink.MsgUploadFiles
			s.await(phaseAfter(name, uploaded))
		}
	}
	if s.final == nil {
		return nil, cause.New(cause.Disconnected, errDeviceDisconnect)
	}
	return s.final, nil
}

// dispatch answers one device message. done is true when the exchange
// is over. An error ends the exchange: the connection is broken, the
// device broke the protocol, or it named a path outside the backup (the
// refusal has been sent where the protocol has room for it).
func (s *session) dispatch(name string, msg []any) (done bool, err error) {
	if s.src != nil {
		return s.dispatchRestore(name, msg)
	}
	switch name {
	case devicelink.MsgDownloadFiles:
		return false, s.downloadFiles(msg)
	case devicelink.MsgUploadFiles:
		return false, s.uploadFiles(msg)
	case devicelink.MsgGetFreeDiskSpace:
		return false, s.freeSpace()
	case devicelink.MsgContentsOfDir:
		return false, s.contentsOfDirectory(msg)
	case devicelink.MsgCreateDirectory:
		return false, s.createDirectory(msg)
	case devicelink.MsgMoveItems, devicelink.MsgMoveFiles:
		return false, s.moveItems(name, msg)
	case devicelink.MsgRemoveItems, devicelink.MsgRemoveFiles:
		return false, s.removeItems(name, msg)
	case devicelink.MsgCopyItem:
		return false, s.copyItem(msg)
	case devicelink.MsgPurgeDiskSpace:
		// Nothing of ours may be purged to make room; the device then
		// reports not enough space, which is the truth.
		return false, s.status(devicelink.CodeGeneric, "Operation not supported", map[string]any{})
	case devicelink.MsgProcessMessage:
		return true, s.processMessage(msg)
	case devicelink.MsgDisconnect:
		return true, nil
	default:
		return false, s.unanswered(name)
	}
}

// status sends a DLMessageStatusResponse.
func (s *session) status(code int64, desc string, payload any) error {
	if err := s.dl.SendStatusResponse(code, desc, payload); err != nil {
		return s.ioError("status response", err)
	}
	return nil
}

// refuse answers a request that named a path outside the backup with an
// error, then returns the refusal so the exchange ends.
func (s *session) refuse(err error) error {
	s.log.Warn("mobilebackup2: refused a hostile request", "err", err)
	if serr := s.status(devicelink.CodeGeneric, "Path outside the backup directory", map[string]any{}); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}

// hostFailure records a local file error that dooms the backup.
func (s *session) hostFailure(op string, err error) {
	if s.hostErr == nil && isHostFatal(err) {
		s.hostErr = fmt.Errorf("%s: %w", op, err)
		s.log.Warn("mobilebackup2: this computer cannot hold the backup", "op", op, "err", err)
	}
}

// fsErr turns a failed file operation into the status the device gets,
// or into the error that ends the exchange when os.Root refused the path.
func (s *session) fsErr(op, p string, err error) (int64, string, error) {
	if isRootEscape(err) {
		return 0, "", escape(op, p, "leaves the backup directory through a symbolic link")
	}
	s.hostFailure(op, err)
	return dlCode(err), errText(err), nil
}

// errText is the description of a file error the device gets: the system
// error's own words, as libimobiledevice sends strerror.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// setProgress takes the overall progress a device put at element i.
func (s *session) setProgress(msg []any, i int) {
	if i < len(msg) {
		if p, ok := wire.Real(msg[i]); ok && p > 0 && p <= 100 {
			s.percent = p
		}
	}
	s.report(true)
}

// report calls the progress callback, at most every progressEvery unless
// force is set.
func (s *session) report(force bool) {
	if s.onProg == nil {
		return
	}
	now := time.Now()
	if !force && now.Sub(s.lastReport) < progressEvery {
		return
	}
	s.lastReport = now
	s.onProg(Progress{Percent: s.percent, Bytes: s.bytes, Files: s.files, Thinking: s.quiet})
}

// ioError classifies a failure of the connection itself.
func (s *session) ioError(what string, err error) error {
	if reason := s.link.aborted(); reason != nil {
		switch {
		case errors.Is(reason, ErrCancelledByDevice):
			return cause.New(cause.Interrupted, fmt.Errorf("%s: %w", what, reason))
		case errors.Is(reason, context.DeadlineExceeded):
			return cause.New(cause.Stalled, fmt.Errorf("%s: %w", what, reason))
		case cause.Of(reason) != cause.Unknown:
			// The caller said why it cancelled (unplugged, stalled).
			return fmt.Errorf("%s: %w", what, reason)
		default:
			// The caller cancelled: backupd is stopping.
			return cause.New(cause.Interrupted, fmt.Errorf("%s: %w", what, reason))
		}
	}
	if errors.Is(err, devicelink.ErrProtocol) {
		return cause.New(cause.ProtocolError, fmt.Errorf("%s: %w", what, err))
	}
	if isTimeout(err) {
		return cause.New(cause.Stalled, fmt.Errorf("%s: no progress for %v: %w", what, s.link.timeout, err))
	}
	return cause.New(cause.Disconnected, fmt.Errorf("%s: %w", what, err))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// processMessage reads the device's final Response.
func (s *session) processMessage(msg []any) error {
	d, err := devicelink.ProcessMessageDict(msg)
	if err != nil {
		return cause.New(cause.ProtocolError, err)
	}
	code, ok := wire.Int(d["ErrorCode"])
	if !ok {
		return cause.Errorf(cause.ProtocolError, "mobilebackup2: final %.100v without an ErrorCode", d[devicelink.KeyMessageName])
	}
	text, _ := d["ErrorDescription"].(string)
	s.final = &deviceResult{Code: int(code), Text: text}
	s.log.Debug("mobilebackup2 final response", "code", code, "text", text)
	return nil
}

// disconnect says goodbye, as libimobiledevice does when it frees its
// client; the device may already be gone.
func (s *session) disconnect() {
	s.link.setTimeout(2 * time.Second)
	_ = s.dl.Disconnect("")
}

// arg returns element i of msg as a T, or a protocol error.
func arg[T any](msg []any, i int) (T, error) {
	v, err := devicelink.Arg[T](msg, i)
	if err != nil {
		return v, cause.New(cause.ProtocolError, err)
	}
	return v, nil
}

// strings reads element i of msg as an array of strings.
func stringsArg(msg []any, i int) ([]string, error) {
	if i >= len(msg) {
		return nil, cause.Errorf(cause.ProtocolError, "%s has no element %d", msg[0], i)
	}
	ss, err := devicelink.Strings(msg[i])
	if err != nil {
		return nil, cause.New(cause.ProtocolError, fmt.Errorf("%s: %w", msg[0], err))
	}
	return ss, nil
}

// noStaging refuses a file request in a session without a backup
// directory (ChangePassword).
func (s *session) noStaging(op string) error {
	return s.status(devicelink.CodeGeneric, op+" is not possible in this request", map[string]any{})
}
