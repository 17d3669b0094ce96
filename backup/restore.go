package backup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/afc"
	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/usbmux"
)

// RestoreSource is the backup a restore reads: a pinned backup of
// backup/repo (FromPin), or a stand-in in tests. The engine only ever
// opens its files for reading.
type RestoreSource interface {
	// Dir is the backup's directory, the one holding Status.plist.
	Dir() string
	// UDID is the phone the backup is of: the restore's
	// SourceIdentifier, and the folder the phone names its files under.
	UDID() string
	// Verify checks the backup is whole; an error with cause
	// verify_failed means it is not.
	Verify(ctx context.Context) error
}

// FromPin is the restore source for a backup pinned in r:
//
//	pin, err := r.Pin(sourceUDID, "latest")
//	defer pin.Release()
//	res, err := engine.Restore(ctx, dev, backup.RestoreTarget{Source: backup.FromPin(r, pin), Options: backup.DefaultRestoreOptions()})
func FromPin(r *repo.Repo, p *repo.Pin) RestoreSource { return pinSource{r, p} }

type pinSource struct {
	r *repo.Repo
	p *repo.Pin
}

func (s pinSource) Dir() string  { return s.p.Path() }
func (s pinSource) UDID() string { return s.p.Version().UDID }
func (s pinSource) Verify(ctx context.Context) error {
	_, err := s.r.Verify(ctx, s.p.Path())
	return err
}

// RestoreOptions say what the phone takes from the backup. The field
// names say in plain words what each does; restoreRequest maps them to
// the protocol's options.
type RestoreOptions struct {
	// SystemFiles restores system files too (RestoreSystemFiles).
	SystemFiles bool
	// KeepPhoneSettings keeps the settings the phone has now instead of
	// restoring the backup's (RestorePreserveSettings true). libimobiledevice
	// sends RestorePreserveSettings = !--settings and pymobiledevice3
	// RestorePreserveSettings = settings: backupd follows the key's name
	// and libimobiledevice, whose mapping was taken from iTunes.
	KeepPhoneSettings bool
	// NoReboot asks the phone not to restart when it is done
	// (RestoreShouldReboot false); the restored data appears only after
	// it restarts, and it takes no second restore until then.
	NoReboot bool
	// CopyBackup lets the phone keep a copy of the backup before it
	// restores (RestoreDontCopyBackup false).
	CopyBackup bool
	// RemoveItemsNotRestored removes what is on the phone and not in the
	// backup (RemoveItemsNotRestored).
	RemoveItemsNotRestored bool
	// SkipApps leaves out /iTunesRestore/RestoreApplications.plist, so
	// the phone does not reinstall the backup's apps.
	SkipApps bool
	// Password of an encrypted backup. It goes to the phone in the
	// Restore request and nowhere else.
	Password string
}

// DefaultRestoreOptions restore what Finder restores: apps and their
// data, settings and system files, then the phone restarts.
func DefaultRestoreOptions() RestoreOptions {
	return RestoreOptions{SystemFiles: true}
}

// RestoreTarget says what to restore and how.
type RestoreTarget struct {
	// Source is the backup to restore. Required.
	Source  RestoreSource
	Options RestoreOptions
	// Progress, if set, is called as the phone downloads the backup:
	// Percent is the phone's own estimate, Bytes and Files what it has
	// been sent. It must return quickly.
	Progress func(Progress)
	// AwaitingPasscode is told when the phone asks for its passcode, as
	// for a backup (Target.AwaitingPasscode).
	AwaitingPasscode func(bool)
}

// RestoreResult describes one restore, successful or not.
type RestoreResult struct {
	UDID string
	// SourceUDID and SourceDir name the backup restored from.
	SourceUDID, SourceDir string
	// Bytes and Files count the file content sent to the phone, data
	// files and the backup's plists and Manifest.db alike.
	Bytes, Files int64
	// AppsPlist: RestoreApplications.plist was written, so the phone
	// reinstalls the backup's apps after it restarts.
	AppsPlist bool
	Duration  time.Duration
	// DeviceErrorCode and DeviceErrorText are the phone's final
	// ErrorCode and ErrorDescription.
	DeviceErrorCode int
	DeviceErrorText string
	// Cause is cause.None on success, else why the restore failed.
	Cause cause.Code
}

// Limits on what the engine reads from a backup into memory.
const (
	// maxBackupPlist bounds Info.plist (app icons) and Manifest.plist.
	maxBackupPlist = 64 << 20
	// restoreAppsDir and restoreAppsPlist are where a host leaves the
	// apps the phone is to reinstall after a restore.
	restoreAppsDir   = "/iTunesRestore"
	restoreAppsPlist = restoreAppsDir + "/RestoreApplications.plist"
)

// What a restore that broke off says about the phone.
const (
	errRestoreCut = "the restore stopped part way: the iPhone may hold part of the backup's data and may restart by itself; " +
		"the backup on this computer is untouched, so plug the iPhone in, unlock it and restore again"
	errRestoreNotStarted = "the restore stopped before the iPhone received any of the backup, so nothing on it changed; " +
		"plug it in, unlock it and restore again"
)

// Restore puts the backup t.Source on dev: it checks the backup and the
// phone before the first byte (backup_incomplete, ios_too_old, a missing
// password), takes the sync lock as a backup does, writes
// RestoreApplications.plist unless SkipApps, sends the Restore request
// and serves every file the phone asks for from the backup, read-only,
// until the phone's final Response.
//
// Every path the phone names is confined to the backup: a path outside
// it gets a file error and not one byte, and ends the restore with
// protocol_error. Requests to change files are answered with an error
// and change nothing. The error, when not nil, is a *cause.Error.
func (e *Engine) Restore(ctx context.Context, dev usbmux.Device, t RestoreTarget) (res RestoreResult, err error) {
	start := e.opts.Now()
	res.UDID = dev.UDID
	log := e.opts.Logger.With("udid", dev.UDID)
	defer func() {
		res.Duration = e.opts.Now().Sub(start)
		if err != nil {
			ce := classify(err)
			res.Cause = ce.Code
			if res.DeviceErrorCode == 0 && res.DeviceErrorText == "" {
				res.DeviceErrorCode, res.DeviceErrorText = ce.DeviceErrorCode, ce.DeviceErrorText
			}
			log.Warn("restore failed", "cause", ce.Code, "err", err)
			err = ce
		}
	}()
	if t.Source == nil {
		return res, errors.New("backup: RestoreTarget.Source is nil")
	}
	res.SourceUDID, res.SourceDir = t.Source.UDID(), t.Source.Dir()
	b, err := checkRestoreSource(ctx, t.Source, t.Options)
	if err != nil {
		return res, err
	}

	runCtx, cancelRun := context.WithCancelCause(ctx)
	defer cancelRun(nil)
	defer func() {
		if err != nil {
			err = explainCancel(ctx, runCtx, err)
		}
	}()
	pass := &passcodeState{report: t.AwaitingPasscode}
	defer pass.end()
	h, err := e.prepareSync(runCtx, dev, cancelRun, pass, log, false)
	if h != nil {
		defer h.close(ctx, log)
	}
	if err != nil {
		return res, err
	}
	if err := checkIOS(h.values.productVersion(), b.iosVersion); err != nil {
		return res, err
	}
	if !t.Options.SkipApps {
		if res.AppsPlist, err = writeRestoreApps(runCtx, h.afc, b.apps, e.opts.ServiceTimeout); err != nil {
			return res, err
		}
	}
	defer func() {
		if err != nil && res.AppsPlist {
			// As libimobiledevice does: a failed restore must not leave
			// the phone reinstalling apps.
			removeRestoreApps(ctx, h, log)
		}
	}()

	root, err := os.OpenRoot(t.Source.Dir())
	if err != nil {
		return res, cause.New(cause.BackupIncomplete, fmt.Errorf("open the backup: %w", err))
	}
	defer root.Close()
	conn, err := e.mux.ConnectService(runCtx, dev, lockdown.ServiceMobileBackup2, true)
	if err != nil {
		return res, fmt.Errorf("mobilebackup2: %w", err)
	}
	s := newSession(conn, e.opts, nil, t.Source.Dir(), t.Progress)
	data, err := countDataFiles(root)
	if err != nil {
		return res, cause.New(cause.BackupIncomplete, fmt.Errorf("list the backup: %w", err))
	}
	s.src = &restoreFS{root: root, prefix: t.Source.UDID() + "/", dataFiles: data}
	s.onFirst = pass.started
	// Phones think for minutes in a restore too: while they prepare,
	// before the first file, and while they apply it after the last.
	s.allowThinking(e.presence(runCtx, dev), e.opts.ThinkTimeout)
	final, serr := func() (*deviceResult, error) {
		defer conn.Close()
		defer s.watch(runCtx)()
		if err := s.handshake(); err != nil {
			return nil, err
		}
		if asksPasscode(h.values.productVersion()) {
			guess := time.AfterFunc(e.opts.PasscodeGuess, pass.guess)
			defer guess.Stop()
		}
		final, err := s.request(restoreRequest(dev.UDID, t.Source.UDID(), t.Options))
		s.disconnect()
		return final, err
	}()
	res.Files, res.Bytes = s.files, s.bytes
	if final != nil {
		res.DeviceErrorCode, res.DeviceErrorText = final.Code, final.Text
	}
	if serr != nil {
		return res, restoreCut(serr, s)
	}
	if final.Code != 0 {
		return res, cause.FromRestoreDevice(final.Code, final.Text)
	}
	log.Info("restore done", "source", t.Source.UDID(), "dir", t.Source.Dir(), "files", res.Files, "bytes", res.Bytes)
	return res, nil
}

// restoreCut adds to a restore that broke off what state the phone may
// be in and what to do.
func restoreCut(err error, s *session) error {
	switch cause.Of(err) {
	case cause.Disconnected, cause.Stalled, cause.Interrupted:
	default:
		return err
	}
	if s.files == 0 && s.bytes == 0 {
		return cause.New(cause.Of(err), fmt.Errorf("%s: %w", errRestoreNotStarted, err))
	}
	return cause.New(cause.Of(err), fmt.Errorf("%s (after %d files, %d bytes): %w", errRestoreCut, s.files, s.bytes, err))
}

// restoreRequest is the Restore request, with the options as
// libimobiledevice sends them (RestoreShouldReboot only when false).
func restoreRequest(target, source string, o RestoreOptions) map[string]any {
	opts := map[string]any{
		"RestoreSystemFiles":      o.SystemFiles,
		"RestoreDontCopyBackup":   !o.CopyBackup,
		"RestorePreserveSettings": o.KeepPhoneSettings,
		"RemoveItemsNotRestored":  o.RemoveItemsNotRestored,
	}
	if o.NoReboot {
		opts["RestoreShouldReboot"] = false
	}
	if o.Password != "" {
		opts["Password"] = o.Password
	}
	return map[string]any{
		devicelink.KeyMessageName: "Restore",
		"TargetIdentifier":        target,
		"SourceIdentifier":        source,
		"Options":                 opts,
	}
}

// backupFacts is what a restore needs from the backup's plists.
type backupFacts struct {
	iosVersion string
	apps       map[string]any // Info.plist Applications; nil when none
	encrypted  bool
}

// checkRestoreSource does the checks that need no phone: Info.plist and
// Manifest.plist are there, Status.plist says finished, the backup
// verifies, and an encrypted one has its password.
func checkRestoreSource(ctx context.Context, src RestoreSource, o RestoreOptions) (backupFacts, error) {
	var b backupFacts
	incomplete := func(format string, args ...any) error {
		return cause.Errorf(cause.BackupIncomplete, "the backup in %s: "+format, append([]any{src.Dir()}, args...)...)
	}
	root, err := os.OpenRoot(src.Dir())
	if err != nil {
		return b, incomplete("%w", err)
	}
	defer root.Close()
	var status, manifest, info map[string]any
	for _, p := range []struct {
		name string
		out  *map[string]any
	}{{"Status.plist", &status}, {"Manifest.plist", &manifest}, {"Info.plist", &info}} {
		data, err := readRootFile(root, p.name, maxBackupPlist)
		if err != nil {
			return b, incomplete("%s: %w", p.name, err)
		}
		if err := wire.Decode(data, p.out); err != nil {
			return b, incomplete("%s does not parse: %w", p.name, err)
		}
	}
	if st, _ := status["SnapshotState"].(string); st != "finished" {
		return b, incomplete("Status.plist says SnapshotState %q, not \"finished\"", st)
	}
	if err := src.Verify(ctx); err != nil {
		if cause.Of(err) == cause.VerifyFailed {
			return b, cause.New(cause.BackupIncomplete, err)
		}
		return b, fmt.Errorf("verify the backup: %w", err)
	}
	if lockdown, ok := manifest["Lockdown"].(map[string]any); ok {
		b.iosVersion, _ = lockdown["ProductVersion"].(string)
	}
	if b.iosVersion == "" {
		b.iosVersion, _ = info["Product Version"].(string)
	}
	b.encrypted, _ = manifest["IsEncrypted"].(bool)
	if b.encrypted && o.Password == "" {
		return b, cause.Errorf(cause.WrongBackupPassword, "the backup in %s is encrypted and no password was given", src.Dir())
	}
	if apps, ok := info["Applications"].(map[string]any); ok && len(apps) > 0 {
		b.apps = apps
	}
	return b, nil
}

// readRootFile reads a regular file through root, at most limit bytes.
func readRootFile(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// checkIOS refuses a phone whose iOS is older than the backup's. An
// unreadable version on either side lets the phone decide.
func checkIOS(phone, backup string) error {
	p, ok1 := parseIOSVersion(phone)
	b, ok2 := parseIOSVersion(backup)
	if !ok1 || !ok2 {
		return nil
	}
	for i := range p {
		if p[i] != b[i] {
			if p[i] < b[i] {
				return cause.Errorf(cause.IOSTooOld, "the iPhone runs iOS %s and the backup was made with iOS %s", phone, backup)
			}
			return nil
		}
	}
	return nil
}

// parseIOSVersion reads "17", "17.5" or "17.5.1".
func parseIOSVersion(s string) ([3]int, bool) {
	var v [3]int
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) == 0 || len(parts) > 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

// writeRestoreApps writes the backup's Applications dictionary, as XML,
// to /iTunesRestore/RestoreApplications.plist, so the phone reinstalls
// the apps once the restore is done. A backup without apps writes none.
func writeRestoreApps(ctx context.Context, c *afc.Client, apps map[string]any, timeout time.Duration) (bool, error) {
	if apps == nil {
		return false, nil
	}
	data, err := wire.Encode(apps, wire.XML)
	if err != nil {
		return false, fmt.Errorf("RestoreApplications.plist: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(err error) (bool, error) {
		if errors.As(err, new(*afc.StatusError)) {
			return false, cause.New(cause.ProtocolError, fmt.Errorf("write %s: %w", restoreAppsPlist, err))
		}
		return false, cause.New(cause.Disconnected, fmt.Errorf("write %s: %w", restoreAppsPlist, err))
	}
	if err := c.MakeDir(ctx, restoreAppsDir); err != nil {
		return fail(err)
	}
	h, err := c.FileOpen(ctx, restoreAppsPlist, afc.ModeWriteOnly)
	if err != nil {
		return fail(err)
	}
	werr := c.FileWrite(ctx, h, data)
	cerr := c.FileClose(ctx, h)
	if err := errors.Join(werr, cerr); err != nil {
		return fail(err)
	}
	return true, nil
}

// removeRestoreApps takes RestoreApplications.plist away again after a
// failed restore, if the phone is still there.
func removeRestoreApps(ctx context.Context, h *helpers, log interface{ Debug(string, ...any) }) {
	if h.afc == nil || h.closed {
		return
	}
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, p := range []string{restoreAppsPlist, restoreAppsDir} {
		if err := h.afc.RemovePath(c, p); err != nil {
			log.Debug("remove after a failed restore", "path", p, "err", err)
			return
		}
	}
}

// restoreFS is the backup a restore serves, read-only: the phone names
// its files "<source>/<path>", which is <path> under root.
type restoreFS struct {
	root   *os.Root
	prefix string // "<source>/"
	// dataFiles is how many data files (xx/<fileID>) the backup holds,
	// asked how many of them the phone has asked for: the silence after
	// a download is slow only before the first (the phone reads the
	// manifest) and after the last (it applies the restore).
	dataFiles, asked int
}

// countDataFiles counts the backup's xx/<fileID> files.
func countDataFiles(root *os.Root) (int, error) {
	top, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range top {
		if !d.IsDir() || !isShardDir(d.Name()) {
			continue
		}
		files, err := fs.ReadDir(root.FS(), d.Name())
		if err != nil {
			return 0, err
		}
		n += len(files)
	}
	return n, nil
}

// isShardDir: name is one of the 256 two-hex-digit directories of data
// files.
func isShardDir(name string) bool {
	if len(name) != 2 {
		return false
	}
	_, err := hex.DecodeString(name)
	return err == nil
}

// note counts a path the phone asked for if it names a data file.
func (r *restoreFS) note(p string) {
	rel, ok := strings.CutPrefix(strings.TrimLeft(p, "/"), r.prefix)
	if dir, _, found := strings.Cut(rel, "/"); ok && found && isShardDir(dir) {
		r.asked++
	}
}

// slowAfterDownload: the silence after this download is one where real
// phones think.
func (r *restoreFS) slowAfterDownload() bool {
	return r.asked == 0 || r.asked >= r.dataFiles
}

// path maps a path the phone named to one under root, or refuses it. A
// leading '/' maps under the backup directory, as in a backup
// (devicePath), so "/<source>/x" is "<source>/x".
func (r *restoreFS) path(op, p string) (string, error) {
	rel, ok := strings.CutPrefix(strings.TrimLeft(p, "/"), r.prefix)
	if !ok {
		return "", escape(op, p, "outside the backup being restored (not under "+strings.TrimSuffix(r.prefix, "/")+"/)")
	}
	return devicePath(op, rel, DefaultMaxPathLen, false)
}

// dispatchRestore answers one phone message during a restore: files
// come from the backup, nothing is ever changed.
func (s *session) dispatchRestore(name string, msg []any) (bool, error) {
	switch name {
	case devicelink.MsgDownloadFiles:
		return false, s.restoreDownload(msg)
	case devicelink.MsgUploadFiles:
		return false, s.restoreRefuseUpload(msg)
	case devicelink.MsgCreateDirectory, devicelink.MsgMoveItems, devicelink.MsgMoveFiles,
		devicelink.MsgRemoveItems, devicelink.MsgRemoveFiles, devicelink.MsgCopyItem, devicelink.MsgPurgeDiskSpace:
		// No iPhone asks for these in a restore; the backup is not
		// ours to change.
		s.log.Warn("mobilebackup2: refused to change the backup during a restore", "message", name)
		return false, s.status(devicelink.CodeGeneric, "The backup is read-only during a restore", map[string]any{})
	}
	return s.dispatchShared(name, msg)
}

// dispatchShared handles what a restore answers as a backup does.
func (s *session) dispatchShared(name string, msg []any) (bool, error) {
	switch name {
	case devicelink.MsgGetFreeDiskSpace:
		return false, s.freeSpace()
	case devicelink.MsgContentsOfDir:
		return false, s.restoreList(msg)
	case devicelink.MsgProcessMessage:
		return true, s.processMessage(msg)
	case devicelink.MsgDisconnect:
		return true, nil
	}
	return false, s.unanswered(name)
}

// restoreDownload sends the files the phone asks for, from the backup.
// A missing one gets an error block and a -6 entry in a multi-status
// response, as libimobiledevice sends; one outside the backup gets an
// error block (not one byte of it), and then the restore ends.
func (s *session) restoreDownload(msg []any) error {
	paths, err := stringsArg(msg, 1)
	if err != nil {
		return err
	}
	s.setProgress(msg, 3)
	if s.fw == nil {
		s.fw = s.dl.NewFileWriter(devicelink.Download, downloadBlock)
	}
	errs := map[string]devicelink.FileError{}
	var refused error
	for _, p := range paths {
		s.src.note(p)
		code, text, err := s.restoreSend(p)
		if err != nil {
			var esc *EscapeError
			if !errors.As(err, &esc) {
				return err
			}
			refused = err
			errs[p] = devicelink.FileError{Code: devicelink.CodeGeneric, Message: "Path outside the backup directory"}
			break
		}
		if code != 0 {
			errs[p] = devicelink.FileError{Code: code, Message: text}
		}
	}
	if err := s.fw.Finish(); err != nil {
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
		s.log.Warn("mobilebackup2: refused a hostile download during a restore", "err", refused)
	}
	return refused
}

// restoreSend streams one file of the backup. A file it cannot send gets
// an error block, and its code and text are returned; err is set when
// the connection failed or the path was refused.
func (s *session) restoreSend(p string) (int64, string, error) {
	fw := s.fw
	travels := len(p) > 0 && len(p) <= devicelink.MaxName
	fail := func(code int64, text string) (int64, string, error) {
		if travels {
			if err := fw.Fail(text); err != nil {
				return 0, "", s.ioError("DownloadFiles", err)
			}
		}
		return code, text, nil
	}
	if travels {
		if err := fw.Begin("", p); err != nil {
			return 0, "", s.ioError("DownloadFiles", err)
		}
	}
	clean, perr := s.src.path(devicelink.MsgDownloadFiles, p)
	if perr != nil {
		if _, _, err := fail(devicelink.CodeGeneric, "Path outside the backup directory"); err != nil {
			return 0, "", err
		}
		return 0, "", perr
	}
	f, oerr := s.src.root.Open(clean)
	if oerr == nil {
		defer f.Close()
		var fi fs.FileInfo
		if fi, oerr = f.Stat(); oerr == nil && !fi.Mode().IsRegular() {
			oerr = &fs.PathError{Op: "open", Path: clean, Err: syscall.EISDIR}
		}
	}
	if oerr != nil {
		if isRootEscape(oerr) {
			fail(devicelink.CodeGeneric, "Path outside the backup directory")
			return 0, "", escape(devicelink.MsgDownloadFiles, p, "leaves the backup through a symbolic link")
		}
		return fail(dlCode(oerr), errText(oerr))
	}
	n, rerr := fw.ReadFrom(&countingReader{r: onlyReader{f}, s: s})
	if rerr != nil {
		return fail(dlCode(rerr), errText(rerr))
	}
	if err := fw.End(); err != nil {
		return 0, "", s.ioError("DownloadFiles", err)
	}
	s.files++
	s.log.Debug("mobilebackup2: sent", "path", p, "bytes", n)
	return 0, "", nil
}

// countingReader counts what goes to the phone and reports progress.
type countingReader struct {
	r io.Reader
	s *session
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.s.bytes += int64(n)
	c.s.report(false)
	return n, err
}

// restoreRefuseUpload drains what the phone sends and stores none of it.
func (s *session) restoreRefuseUpload(msg []any) error {
	s.log.Warn("mobilebackup2: the phone sent files during a restore; none are stored")
	fr := s.dl.NewFileReader(devicelink.Upload)
	for {
		h, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s.ioError("UploadFiles", err)
		}
		if _, err := s.drain(fr, h.Path, s.opts.MaxFileSize); err != nil {
			return err
		}
	}
	return s.status(devicelink.CodeGeneric, "The backup is read-only during a restore", map[string]any{})
}

// restoreList lists a directory of the backup, read-only.
func (s *session) restoreList(msg []any) error {
	p, err := arg[string](msg, 1)
	if err != nil {
		return err
	}
	rel := "."
	if strings.TrimSuffix(p, "/")+"/" != s.src.prefix {
		if rel, err = s.src.path(devicelink.MsgContentsOfDir, p); err != nil {
			return s.refuse(err)
		}
	}
	entries, lerr := fs.ReadDir(s.src.root.FS(), filepath.ToSlash(rel))
	if lerr != nil {
		if isRootEscape(lerr) {
			return s.refuse(escape(devicelink.MsgContentsOfDir, p, "leaves the backup through a symbolic link"))
		}
		return s.status(dlCode(lerr), errText(lerr), map[string]any{})
	}
	out := make(devicelink.Listing, 0, len(entries))
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, devicelink.EntryOf(e.Name(), fi))
	}
	return s.status(0, "", out)
}
