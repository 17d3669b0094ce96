package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/devicelink"
)

// Device → host file requests, answered the way libimobiledevice's
// idevicebackup2 answers them (the protocol has no other specification),
// except where it is unsafe: every path is confined, nothing existing is
// opened for writing, and what the device sends is bounded.

// downloadFiles sends the files the device asks for: each is streamed
// from staging, a missing one gets an error block and a -6 entry in a
// multi-status response.
func (s *session) downloadFiles(msg []any) error {
	paths, err := stringsArg(msg, 1)
	if err != nil {
		return err
	}
	s.setProgress(msg, 3)
	if s.fw == nil {
		s.fw = s.dl.NewFileWriter(devicelink.Download, downloadBlock)
	}
	fw := s.fw
	errs := map[string]devicelink.FileError{}
	var refused error
	for _, p := range paths {
		code, text, err := s.sendFile(fw, p)
		if err != nil {
			var esc *EscapeError
			if !errors.As(err, &esc) {
				return err // the connection failed
			}
			// Refused: the device gets an error for it and nothing more.
			refused = err
			errs[p] = devicelink.FileError{Code: devicelink.CodeGeneric, Message: "Path outside the backup directory"}
			break
		}
		if code != 0 {
			errs[p] = devicelink.FileError{Code: code, Message: text}
		}
	}
	if err := fw.Finish(); err != nil {
		return s.ioError("DownloadFiles", err)
	}
	if len(errs) > 0 {
		if err := s.status(devicelink.CodeMultiStatus, "Multi status", devicelink.MultiStatus(errs)); err != nil {
			return err
		}
	} else if err := s.status(0, "", map[string]any{}); err != nil {
		return err
	}
	if refused != nil {
		s.log.Warn("mobilebackup2: refused a hostile download", "err", refused)
	}
	return refused
}

// sendFile streams one file. A file it cannot send gets an error block
// and its code and text are returned; err is set only when the
// connection failed or the path was refused.
func (s *session) sendFile(fw *devicelink.FileWriter, p string) (code int64, text string, err error) {
	// Each file starts with its name, even one we refuse or lack.
	begin := func() error {
		if len(p) == 0 || len(p) > devicelink.MaxName {
			return nil // the name itself cannot travel
		}
		if err := fw.Begin("", p); err != nil {
			return s.ioError("DownloadFiles", err)
		}
		return nil
	}
	fail := func(code int64, text string) (int64, string, error) {
		if len(p) > 0 && len(p) <= devicelink.MaxName {
			if err := fw.Fail(text); err != nil {
				return 0, "", s.ioError("DownloadFiles", err)
			}
		}
		return code, text, nil
	}
	clean, perr := devicePath(devicelink.MsgDownloadFiles, p, DefaultMaxPathLen, false)
	if s.fs == nil && perr == nil {
		perr = escape(devicelink.MsgDownloadFiles, p, "no backup directory in this request")
	}
	if perr != nil {
		if err := begin(); err != nil {
			return 0, "", err
		}
		if _, _, err := fail(devicelink.CodeGeneric, "Path outside the backup directory"); err != nil {
			return 0, "", err
		}
		return 0, "", perr
	}
	if err := begin(); err != nil {
		return 0, "", err
	}
	f, oerr := s.fs.root.Open(clean)
	if oerr == nil {
		defer f.Close()
		var fi fs.FileInfo
		if fi, oerr = f.Stat(); oerr == nil && fi.IsDir() {
			oerr = &fs.PathError{Op: "open", Path: clean, Err: syscall.EISDIR}
		}
	}
	if oerr != nil {
		code, text, err := s.fsErr(devicelink.MsgDownloadFiles, p, oerr)
		if err != nil {
			fail(devicelink.CodeGeneric, "Path outside the backup directory")
			return 0, "", err
		}
		return fail(code, text)
	}
	if _, rerr := fw.ReadFrom(onlyReader{f}); rerr != nil {
		// Either the connection or the file failed; the writer knows
		// which by whether it can still write the error block.
		if c, t, err := fail(dlCode(rerr), errText(rerr)); err != nil {
			return c, t, err
		}
		return dlCode(rerr), errText(rerr), nil
	}
	if err := fw.End(); err != nil {
		return 0, "", s.ioError("DownloadFiles", err)
	}
	return 0, "", nil
}

// freeSpace answers with the free space of the file system that holds
// staging.
func (s *session) freeSpace() error {
	if s.freeDir == "" {
		return s.status(devicelink.CodeGeneric, "No backup directory", uint64(0))
	}
	free, err := FreeSpace(s.freeDir)
	if err != nil {
		s.log.Warn("mobilebackup2: free space", "dir", s.freeDir, "err", err)
		return s.status(devicelink.CodeGeneric, errText(err), uint64(0))
	}
	return s.status(0, "", free)
}

// contentsOfDirectory lists a directory.
func (s *session) contentsOfDirectory(msg []any) error {
	p, err := arg[string](msg, 1)
	if err != nil {
		return err
	}
	if s.fs == nil {
		return s.noStaging(devicelink.MsgContentsOfDir)
	}
	clean, err := devicePath(devicelink.MsgContentsOfDir, p, DefaultMaxPathLen, true)
	if err != nil {
		return s.refuse(err)
	}
	entries, lerr := s.fs.list(clean)
	if lerr != nil {
		code, text, err := s.fsErr(devicelink.MsgContentsOfDir, p, lerr)
		if err != nil {
			return s.refuse(err)
		}
		return s.status(code, text, map[string]any{})
	}
	out := make(devicelink.Listing, len(entries))
	for i, e := range entries {
		out[i] = devicelink.EntryOf(e.name, e.info)
	}
	return s.status(0, "", out)
}

// createDirectory makes a directory and its parents.
func (s *session) createDirectory(msg []any) error {
	p, err := arg[string](msg, 1)
	if err != nil {
		return err
	}
	if s.fs == nil {
		return s.noStaging(devicelink.MsgCreateDirectory)
	}
	clean, err := devicePath(devicelink.MsgCreateDirectory, p, DefaultMaxPathLen, true)
	if err != nil {
		return s.refuse(err)
	}
	merr := s.budget.create()
	if merr == nil {
		merr = s.fs.mkdirAll(clean)
	}
	if merr != nil {
		code, text, err := s.fsErr(devicelink.MsgCreateDirectory, p, merr)
		if err != nil {
			return s.refuse(err)
		}
		return s.status(code, text, nil)
	}
	return s.status(0, "", nil)
}

// moveItems renames each source to its destination, replacing what is
// there. Every path is checked before anything is moved.
func (s *session) moveItems(name string, msg []any) error {
	s.setProgress(msg, 3)
	moves, err := devicelink.MovesArg(msg, 1)
	if err != nil {
		return cause.New(cause.ProtocolError, err)
	}
	if s.fs == nil {
		return s.noStaging(name)
	}
	paths := func(src, dst string) (string, string, error) {
		cs, err := devicePath(name, src, DefaultMaxPathLen, false)
		if err != nil {
			return "", "", err
		}
		cd, err := devicePath(name, dst, DefaultMaxPathLen, false)
		return cs, cd, err
	}
	// Every path is checked before anything moves. The moves are read
	// from the message, not kept: a device moves every file it sent in
	// one message.
	if err := moves.Each(func(src, dst string) error {
		_, _, err := paths(src, dst)
		return err
	}); err != nil {
		if errors.Is(err, devicelink.ErrProtocol) {
			return cause.New(cause.ProtocolError, fmt.Errorf("%s: %w", name, err))
		}
		return s.refuse(err)
	}
	var failed error
	if err := moves.Each(func(src, dst string) error {
		cs, cd, _ := paths(src, dst)
		merr := s.fs.move(cs, cd)
		if merr == nil {
			return nil
		}
		code, text, err := s.fsErr(name, src, merr)
		if err != nil {
			return s.refuse(err)
		}
		s.log.Debug("mobilebackup2: move failed", "src", cs, "dst", cd, "err", merr)
		// Stop at the first failure, as libimobiledevice does.
		failed = s.status(code, text, map[string]any{})
		return errStopMoves
	}); err != nil {
		if err == errStopMoves {
			return failed
		}
		return err
	}
	return s.status(0, "", map[string]any{})
}

// errStopMoves ends moveItems' walk at a failed move, whose status has
// been sent.
var errStopMoves = errors.New("stop")

// removeItems removes each path recursively; a missing one is fine.
func (s *session) removeItems(name string, msg []any) error {
	s.setProgress(msg, 3)
	paths, err := stringsArg(msg, 1)
	if err != nil {
		return err
	}
	if s.fs == nil {
		return s.noStaging(name)
	}
	clean := make([]string, len(paths))
	for i, p := range paths {
		if clean[i], err = devicePath(name, p, DefaultMaxPathLen, false); err != nil {
			return s.refuse(err)
		}
	}
	var code int64
	var text string
	for i, p := range clean {
		if rerr := s.fs.removeAll(p); rerr != nil {
			c, t, err := s.fsErr(name, paths[i], rerr)
			if err != nil {
				return s.refuse(err)
			}
			// Go on with the rest and report the last failure, as
			// libimobiledevice does.
			code, text = c, t
		}
	}
	return s.status(code, text, map[string]any{})
}

// copyItem copies a file or a directory.
func (s *session) copyItem(msg []any) error {
	src, err := arg[string](msg, 1)
	if err != nil {
		return err
	}
	dst, err := arg[string](msg, 2)
	if err != nil {
		return err
	}
	if s.fs == nil {
		return s.noStaging(devicelink.MsgCopyItem)
	}
	cs, err := devicePath(devicelink.MsgCopyItem, src, DefaultMaxPathLen, false)
	if err != nil {
		return s.refuse(err)
	}
	cd, err := devicePath(devicelink.MsgCopyItem, dst, DefaultMaxPathLen, false)
	if err != nil {
		return s.refuse(err)
	}
	cerr := s.budget.create()
	if cerr == nil {
		cerr = s.fs.copy(cs, cd)
	}
	if cerr != nil {
		code, text, err := s.fsErr(devicelink.MsgCopyItem, src, cerr)
		if err != nil {
			return s.refuse(err)
		}
		return s.status(code, text, map[string]any{})
	}
	return s.status(0, "", map[string]any{})
}
