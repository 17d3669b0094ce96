package backupsvc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/backupd/backupd/proto/backupcrypt"
	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/notification"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim/fileset"
)

// Batches keep each DeviceLink message and each upload round moderate, and
// give the host's progress display something to show.
const (
	uploadBatchBytes = 256 << 20
	uploadBatchFiles = 5000
	pathBatch        = 5000
	// Host-supplied files we keep in memory are small plists.
	maxPlistDownload = 16 << 20
	// The host's Manifest.db is streamed to disk; beyond this it is not a
	// manifest this device could have written.
	maxManifestDB = 4 << 30
	// The host's messages to a device are short status responses.
	maxHostMessage = 4 << 20
)

// Serve runs the device side of one mobilebackup2 connection until the
// host disconnects, the context ends or a fault ends the session. It
// returns nil when the host hung up after a completed exchange (whatever
// the device reported in it). Serve does not close conn, except through
// Unplug or, when Config.Unplug is nil, to simulate an unplug.
func Serve(ctx context.Context, conn net.Conn, cfg Config) error {
	if cfg.Set == nil {
		return errors.New("backupsvc: Config.Set is required")
	}
	if cfg.Stats == nil {
		cfg.Stats = &Stats{}
	}
	if cfg.Encryption == nil {
		cfg.Encryption = NewEncryption("")
	}
	if cfg.BlockSize <= 0 {
		cfg.BlockSize = devicelink.DefaultBlockSize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// Blocked reads and writes end when the context does.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var w io.Writer = conn
	if cfg.Faults.SlowLinkBytesPerSec > 0 {
		w = &rateWriter{ctx: ctx, w: conn, rate: cfg.Faults.SlowLinkBytesPerSec, start: time.Now()}
	}
	dl := devicelink.NewConn(readWriter{conn, w})
	dl.MaxMessage = maxHostMessage
	s := &session{ctx: ctx, cfg: &cfg, conn: conn, dl: dl, stats: cfg.Stats}
	err := s.run()
	if ctx.Err() != nil && !errors.Is(err, ErrUnplugged) && !errors.Is(err, ErrStalled) {
		// Whatever run saw (often a deadline error), the context ended it.
		return fmt.Errorf("backupsvc: %w (%v)", context.Cause(ctx), err)
	}
	return err
}

type readWriter struct {
	io.Reader
	io.Writer
}

// session is one connection's state.
type session struct {
	ctx   context.Context
	cfg   *Config
	conn  net.Conn
	dl    *devicelink.Conn
	stats *Stats
	fw    *devicelink.FileWriter

	target   string      // the backup directory's name, normally the UDID
	keys     *deviceKeys // the device's keys when the backup is encrypted
	progress float64
	// content bytes and files sent in this backup, for byte faults
	sentBytes int64
	sentFiles int
	// The device's own manifest of this backup (listing.go): what the
	// host sent of each file asked for (-1: it had none), and the files
	// the device could not read and did not send.
	downloaded     map[string]int64
	unsent         map[string]bool
	sentUnreadable int
}

func (s *session) run() error {
	if err := s.enter(StepVersion); err != nil {
		return err
	}
	if err := s.dl.DeviceVersionExchange(devicelink.Version400()); err != nil {
		return fmt.Errorf("backupsvc: %w", err)
	}
	if err := s.enter(StepHello); err != nil {
		return err
	}
	if err := s.hello(); err != nil {
		return err
	}
	for {
		name, msg, err := s.dl.ReadMessage()
		if err != nil {
			if isHangup(err) {
				return nil // the host is done with us
			}
			return fmt.Errorf("backupsvc: waiting for a request: %w", err)
		}
		switch name {
		case devicelink.MsgDisconnect:
			return nil
		case devicelink.MsgProcessMessage:
		default:
			return fmt.Errorf("backupsvc: %w: unexpected %s", devicelink.ErrProtocol, name)
		}
		req, err := devicelink.ProcessMessageDict(msg)
		if err != nil {
			return fmt.Errorf("backupsvc: %w", err)
		}
		if err := s.request(req); err != nil {
			return err
		}
	}
}

// isHangup tells a host closing the connection from other failures.
func isHangup(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (s *session) hello() error {
	req, err := s.dl.ReadProcessMessage()
	if err != nil {
		return fmt.Errorf("backupsvc: waiting for Hello: %w", err)
	}
	if req[devicelink.KeyMessageName] != "Hello" {
		return fmt.Errorf("backupsvc: %w: expected Hello, got %v", devicelink.ErrProtocol, req[devicelink.KeyMessageName])
	}
	versions, _ := req["SupportedProtocolVersions"].([]any)
	best := 0.0
	for _, v := range versions {
		if f, ok := wire.Real(v); ok && (f == 2.0 || f == 2.1) && f > best {
			best = f
		}
	}
	if best == 0 || s.cfg.Faults.NoCommonVersion {
		err := s.dl.SendProcessMessage(map[string]any{devicelink.KeyMessageName: "Response", "ErrorCode": CodeNoCommonVersion})
		return errors.Join(fmt.Errorf("backupsvc: no common protocol version in %v", versions), err)
	}
	return s.dl.SendProcessMessage(map[string]any{
		devicelink.KeyMessageName: "Response",
		"ErrorCode":               0,
		"ProtocolVersion":         best,
	})
}

// request handles one host request and its final Response.
func (s *session) request(req map[string]any) error {
	s.target = s.cfg.UDID
	if t, ok := req["TargetIdentifier"].(string); ok && t != "" {
		s.target = t
	}
	switch name, _ := req[devicelink.KeyMessageName].(string); name {
	case "Backup":
		return s.backup(req)
	case "Restore":
		return s.restore(req)
	case "ChangePassword":
		oldPW, haveOld := req["OldPassword"].(string)
		newPW, haveNew := req["NewPassword"].(string)
		code, desc := s.cfg.Encryption.change(oldPW, newPW, haveOld, haveNew)
		return s.finish(code, desc)
	default:
		return s.finish(CodeUnsupported, fmt.Sprintf("The simulated device does not implement %q", name))
	}
}

// finish sends the final Response of a request. The host sends nothing
// back.
func (s *session) finish(code int, desc string) error {
	d := map[string]any{devicelink.KeyMessageName: "Response", "ErrorCode": code}
	if desc != "" {
		d["ErrorDescription"] = desc
	}
	if err := s.dl.SendProcessMessage(d); err != nil {
		return fmt.Errorf("backupsvc: final response: %w", err)
	}
	return nil
}

// enter records a step and applies UnplugAtStep.
func (s *session) enter(st Step) error {
	s.stats.setStep(st)
	if s.cfg.Faults.UnplugAtStep == st {
		return s.unplug()
	}
	return nil
}

func (s *session) unplug() error {
	if s.fw != nil {
		s.fw.Flush() // what is already "on the wire" reaches the host
	}
	if s.cfg.Unplug != nil {
		s.cfg.Unplug()
	} else {
		s.conn.Close()
	}
	return ErrUnplugged
}

// relay sends a device notification to the hosts observing it.
func (s *session) relay(name string) {
	if s.cfg.RelayNotification != nil {
		s.cfg.RelayNotification(name)
	}
}

// wait keeps the host waiting for d, as a device busy with a snapshot
// does, but notices when the host hangs up.
func (s *session) wait(d time.Duration) error {
	_, err := s.waitUntil(d, nil)
	return err
}

// waitUntil is wait that also ends when early is closed (the passcode
// was entered), and says whether it did.
func (s *session) waitUntil(d time.Duration, early <-chan struct{}) (bool, error) {
	if d <= 0 {
		return false, nil
	}
	readable := make(chan error, 1)
	go func() { readable <- s.dl.WaitReadable() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	ended := false
	select {
	case err := <-readable:
		if err != nil {
			return false, fmt.Errorf("backupsvc: host left while the device was busy: %w", err)
		}
		// The host spoke out of turn (idevicebackup2 sends
		// DLMessageDisconnect when interrupted). Stop waiting; its bytes
		// stay buffered, and the next read of the protocol meets them.
		return false, nil
	case <-s.ctx.Done():
		return false, s.ctx.Err()
	case <-early:
		ended = true
	case <-timer.C:
	}
	// Unblock the watcher without losing buffered bytes: a timed-out Peek
	// consumes nothing, and the deadline is cleared afterwards.
	s.conn.SetReadDeadline(time.Unix(1, 0))
	<-readable
	s.conn.SetReadDeadline(time.Time{})
	if s.ctx.Err() != nil {
		s.conn.SetDeadline(time.Unix(1, 0)) // the context ended meanwhile: keep it ended
		return false, s.ctx.Err()
	}
	return ended, nil
}

// hang holds the connection open, sending nothing, until it ends.
func (s *session) hang(reason error) error {
	if s.fw != nil {
		s.fw.Flush()
	}
	_, err := io.Copy(io.Discard, s.conn)
	if err == nil {
		err = io.EOF
	}
	return fmt.Errorf("%w: connection ended: %w", reason, err)
}

// ask sends a request and reads the host's status response.
func (s *session) ask(name string, args ...any) (devicelink.StatusResponse, error) {
	if err := s.dl.WriteMessage(name, args...); err != nil {
		return devicelink.StatusResponse{}, fmt.Errorf("backupsvc: send %s: %w", name, err)
	}
	st, err := s.dl.ReadStatusResponse()
	if err != nil {
		return st, fmt.Errorf("backupsvc: status of %s: %w", name, err)
	}
	return st, nil
}

// hostFailed ends the backup after the host reported an error.
func (s *session) hostFailed(what string, st devicelink.StatusResponse) error {
	code := CodeHostFailure
	if st.Code == devicelink.CodeNoSpace {
		code = CodeNotEnoughSpace
	}
	return s.finish(code, fmt.Sprintf("The computer failed to %s: %s (%d)", what, st.Description, st.Code))
}

func (s *session) backup(req map[string]any) error {
	f := s.cfg.Faults
	opts, _ := req["Options"].(map[string]any)
	force, _ := opts["ForceFullBackup"].(bool)
	encrypted := s.cfg.Encryption.WillEncrypt()
	s.keys = nil
	files := s.cfg.Set.Files() // one consistent snapshot of the device
	dirs := s.cfg.Set.Dirs()
	s.sentBytes, s.sentFiles, s.progress = 0, 0, 0
	s.downloaded, s.unsent, s.sentUnreadable = map[string]int64{}, map[string]bool{}, 0
	if f.AbsolutePaths {
		s.target = "/" + s.target
	}
	s.stats.begin(true, encrypted)

	if f.PasscodeNeverEntered || f.ErrorCode == CodePasscodeNotEntered || f.PasscodeDelay > 0 {
		var early <-chan struct{}
		if s.cfg.PasscodeEntered != nil {
			early = s.cfg.PasscodeEntered()
		}
		s.relay(notification.PasscodePresented)
		entered, err := s.waitUntil(f.PasscodeDelay, early)
		// The prompt goes away either way: entered, or timed out.
		s.relay(notification.PasscodeDismissed)
		if err != nil {
			return err
		}
		if !entered && (f.PasscodeNeverEntered || f.ErrorCode == CodePasscodeNotEntered) {
			return s.finish(CodePasscodeNotEntered, "The passcode was not entered on the device in time to back it up")
		}
	}
	if err := s.wait(f.FirstMessageDelay + f.ThinkPause); err != nil {
		return err
	}
	switch f.ErrorCode {
	case 0, CodeSnapshotFailed, CodeNotEnoughSpace, CodeUploadErrors:
	default:
		return s.finish(f.ErrorCode, fmt.Sprintf("Simulated device error %d", f.ErrorCode))
	}
	var err error
	switch f.Hostile {
	case HostileHugeFrame:
		return s.hostileRaw([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	case HostileMalformedPlist:
		junk := append([]byte("bplist00"), bytes.Repeat([]byte{0xDE, 0xAD, 0xBE, 0xEF}, 16)...)
		return s.hostileRaw(append(binary.BigEndian.AppendUint32(nil, uint32(len(junk))), junk...))
	case HostileTruncatedPlist:
		return s.hostileRaw(append(binary.BigEndian.AppendUint32(nil, 1000), "bplist00\x00\x01"...))
	}

	// An encrypted backup needs the keybag sealed with the current
	// password: seconds with a device's round counts, once per password.
	if encrypted {
		if s.keys, err = s.cfg.Encryption.backupKeys(s.ctx); err != nil {
			return err
		}
	}

	// download-status: what does the host hold?
	if err := s.enter(StepDownloadStatus); err != nil {
		return err
	}
	statusPath := s.target + "/Status.plist"
	var statusBuf bytes.Buffer
	got, err := s.download([]downloadItem{{path: statusPath, w: &statusBuf, limit: maxPlistDownload}})
	if err != nil {
		return err
	}
	incremental := false
	if got[statusPath] && !force {
		if hs, err := parseStatusPlist(statusBuf.Bytes()); err == nil {
			incremental = hs.state == "finished" && hs.uuid != "" && hs.uuid == s.stats.LastSnapshot()
		}
	}
	if f.ErrorCode == CodeSnapshotFailed {
		return s.finish(CodeSnapshotFailed, "Failed to create snapshot")
	}

	// download-manifest: what exactly does the host hold?
	var held map[string]hostEntry
	if incremental {
		if err := s.enter(StepDownloadManifest); err != nil {
			return err
		}
		var corrupt bool
		held, corrupt, err = s.downloadManifest()
		if err != nil {
			return err
		}
		if corrupt {
			return s.finish(CodeCorruptManifest, "The backup's Manifest.plist on the computer is empty or corrupt")
		}
		incremental = held != nil
		if err := s.wait(f.ThinkPause); err != nil { // reading the host's Manifest.db
			return err
		}
	}
	s.stats.begin(!incremental, encrypted)
	if done, err := s.checkStartListing(); done || err != nil {
		return err
	}

	// What to send and what to remove.
	var send []fileset.File
	var remove []string
	var need int64
	present := make(map[string]bool, len(files))
	for _, file := range files {
		if file.Deleted {
			continue
		}
		present[file.FileID] = true
		if incremental {
			if e, ok := held[file.FileID]; ok && !e.changed(file) && !s.stats.wasUnsent(file.FileID) {
				continue
			}
		}
		send = append(send, file)
		need += s.wireSize(file)
	}
	for id, e := range held {
		if e.flags == flagFile && !present[id] {
			remove = append(remove, s.target+"/"+fileset.BackupPath(id))
		}
	}
	slices.Sort(remove)
	// Manifest.db costs a few hundred bytes per entry.
	need += int64(len(files)+len(dirs)) * 512

	// freespace
	if err := s.enter(StepFreeSpace); err != nil {
		return err
	}
	s.progress = 1
	st, err := s.ask(devicelink.MsgGetFreeDiskSpace)
	if err != nil {
		return err
	}
	free, known := wire.Uint(st.Payload)
	if f.ErrorCode == CodeNotEnoughSpace || (st.Code == 0 && known && free < uint64(need)) {
		return s.finish(CodeNotEnoughSpace, fmt.Sprintf("Not enough free space on the computer: %d bytes needed, %d available", need, free))
	}
	if err := s.notices(); err != nil {
		return err
	}

	// mkdir-snapshot
	if err := s.enter(StepMkdirSnapshot); err != nil {
		return err
	}
	s.progress = 2
	mkdirs := []string{s.target + "/Snapshot"}
	prefixes := map[string]bool{}
	for _, file := range send {
		prefixes[file.FileID[:2]] = true
	}
	for _, p := range slices.Sorted(maps.Keys(prefixes)) {
		mkdirs = append(mkdirs, s.target+"/Snapshot/"+p, s.target+"/"+p)
	}
	if f.Hostile == HostileMkdirEscape {
		mkdirs = append(mkdirs, s.target+"/../../backupd-hostile-mkdir")
	}
	for _, d := range mkdirs {
		st, err := s.ask(devicelink.MsgCreateDirectory, d)
		if err != nil {
			return err
		}
		if st.Code != 0 {
			return s.hostFailed("create "+d, st)
		}
	}

	// upload
	if err := s.enter(StepUpload); err != nil {
		return err
	}
	if err := s.wait(f.ThinkPause); err != nil { // scanning what changed
		return err
	}
	if done, err := s.uploadData(send, need); done || err != nil {
		return err
	}
	if f.ErrorCode == CodeUploadErrors {
		return s.finish(CodeUploadErrors, "Multiple errors uploading files")
	}

	// upload-manifest
	if err := s.enter(StepUploadManifest); err != nil {
		return err
	}
	s.progress = 92
	now := s.cfg.Now()
	dbPath, err := buildManifestDB(s.ctx, s.cfg.TempDir, files, dirs, s.keys)
	if err != nil {
		return fmt.Errorf("backupsvc: %w", err)
	}
	if err := s.wait(f.ThinkPause); err != nil { // building Manifest.db
		os.Remove(dbPath)
		return err
	}
	defer os.Remove(dbPath)
	if hostileManifestSQL[f.Hostile] != "" {
		if err := MakeManifestHostile(s.ctx, dbPath, f.Hostile); err != nil {
			return fmt.Errorf("backupsvc: %w", err)
		}
	}
	var manifestKey []byte
	if s.keys != nil {
		plainPath := dbPath
		dbPath, manifestKey, err = s.keys.encryptFile(s.cfg.TempDir, plainPath)
		if err != nil {
			return fmt.Errorf("backupsvc: encrypt Manifest.db: %w", err)
		}
		defer os.Remove(dbPath)
	}
	mp, err := manifestPlist(s.cfg, s.target, s.keys, manifestKey, now)
	if err != nil {
		return fmt.Errorf("backupsvc: %w", err)
	}
	db, err := os.Open(dbPath)
	if err != nil {
		return fmt.Errorf("backupsvc: %w", err)
	}
	defer db.Close()
	dbInfo, err := db.Stat()
	if err != nil {
		return fmt.Errorf("backupsvc: %w", err)
	}
	if done, err := s.uploadOther("upload the manifest", s.announced(dbInfo.Size()+int64(len(mp))),
		upload{"Manifest.db", s.target + "/Snapshot/Manifest.db", db},
		upload{"Manifest.plist", s.target + "/Snapshot/Manifest.plist", bytes.NewReader(mp)},
	); done || err != nil {
		return err
	}

	// move
	if err := s.enter(StepMove); err != nil {
		return err
	}
	s.progress = 95
	moves := make([][2]string, 0, len(send)+2)
	for _, file := range send {
		moves = append(moves, [2]string{s.target + "/Snapshot/" + file.BackupPath(), s.target + "/" + file.BackupPath()})
	}
	manifestDest := s.target + "/Manifest.plist"
	if f.Hostile == HostileMoveEscape {
		manifestDest = s.target + "/../../backupd-hostile-move"
	}
	moves = append(moves,
		[2]string{s.target + "/Snapshot/Manifest.db", s.target + "/Manifest.db"},
		[2]string{s.target + "/Snapshot/Manifest.plist", manifestDest})
	for batch := range slices.Chunk(moves, pathBatch) {
		m := make(map[string]any, len(batch))
		for _, mv := range batch {
			m[mv[0]] = mv[1]
		}
		st, err := s.ask(devicelink.MsgMoveItems, m, map[string]any{}, s.progress)
		if err != nil {
			return err
		}
		if st.Code != 0 {
			return s.hostFailed("move files into place", st)
		}
	}

	// remove
	if err := s.enter(StepRemove); err != nil {
		return err
	}
	s.progress = 98
	removedFiles := len(remove)
	remove = append(remove, s.target+"/Snapshot")
	if f.Hostile == HostileRemoveEscape {
		remove = append(remove, s.target+"/../../backupd-hostile-remove")
	}
	for batch := range slices.Chunk(remove, pathBatch) {
		st, err := s.ask(devicelink.MsgRemoveItems, batch, map[string]any{}, s.progress)
		if err != nil {
			return err
		}
		if st.Code != 0 {
			return s.hostFailed("remove files", st)
		}
	}
	s.stats.removed(removedFiles)
	if done, err := s.checkEndListing(files); done || err != nil {
		return err
	}
	if f.EndRedownload {
		if err := s.redownload(); err != nil {
			return err
		}
	}

	// status
	if err := s.enter(StepStatus); err != nil {
		return err
	}
	s.progress = 100
	uuid := newUUID()
	sp, err := statusPlist(uuid, !incremental, now)
	if err != nil {
		return fmt.Errorf("backupsvc: %w", err)
	}
	if done, err := s.uploadOther("write Status.plist", s.announced(int64(len(sp))),
		upload{"Status.plist", s.target + "/Status.plist", bytes.NewReader(sp)}); done || err != nil {
		return err
	}

	// final
	if err := s.enter(StepFinal); err != nil {
		return err
	}
	s.stats.complete(uuid, now)
	s.stats.setUnsent(s.unsent)
	return s.finish(CodeOK, "")
}

// hostileRaw sends bytes that break DeviceLink framing, then waits for the
// host to hang up, which is the right reaction.
func (s *session) hostileRaw(b []byte) error {
	if _, err := s.dl.Writer().Write(b); err != nil {
		return fmt.Errorf("backupsvc: hostile write: %w", err)
	}
	_, err := io.Copy(io.Discard, s.conn)
	if err == nil || isHangup(err) {
		return nil
	}
	return fmt.Errorf("backupsvc: after hostile frame: %w", err)
}

// downloadItem is one file the device asks the host for.
type downloadItem struct {
	path  string
	w     io.Writer
	limit int64
}

// download asks the host for files and reports which ones it had.
func (s *session) download(items []downloadItem) (map[string]bool, error) {
	paths := make([]any, len(items))
	for i, it := range items {
		paths[i] = it.path
	}
	if err := s.dl.WriteMessage(devicelink.MsgDownloadFiles, paths, map[string]any{}, s.progress); err != nil {
		return nil, fmt.Errorf("backupsvc: send DownloadFiles: %w", err)
	}
	got := map[string]bool{}
	fr := s.dl.NewFileReader(devicelink.Download)
	for {
		h, err := fr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("backupsvc: download: %w", err)
		}
		i := slices.IndexFunc(items, func(it downloadItem) bool { return it.path == h.Path })
		if i < 0 {
			return nil, fmt.Errorf("backupsvc: %w: host sent %q, which was not asked for", devicelink.ErrProtocol, h.Path)
		}
		lw := &limitWriter{w: items[i].w, left: items[i].limit}
		_, err = fr.WriteTo(lw)
		var rfe *devicelink.RemoteFileError
		switch {
		case err == nil:
			got[h.Path] = true
			s.noteDownload(h.Path, items[i].limit-lw.left)
		case errors.As(err, &rfe):
			// The host does not have it (typically ENOENT).
			s.noteDownload(h.Path, -1)
		default:
			return nil, fmt.Errorf("backupsvc: download %s: %w", h.Path, err)
		}
	}
	st, err := s.dl.ReadStatusResponse()
	if err != nil {
		return nil, fmt.Errorf("backupsvc: status of DownloadFiles: %w", err)
	}
	if st.Code != 0 && st.Code != devicelink.CodeMultiStatus {
		// The host failed as a whole: treat every file as missing, which
		// makes the backup full.
		return map[string]bool{}, nil
	}
	return got, nil
}

// limitWriter fails once more than left bytes were written.
type limitWriter struct {
	w    io.Writer
	left int64
}

var errTooBig = errors.New("file larger than the device accepts")

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, fmt.Errorf("%w: %w", devicelink.ErrProtocol, errTooBig)
	}
	l.left -= int64(len(p))
	return l.w.Write(p)
}

// downloadManifest fetches the host's Manifest.plist and Manifest.db. It
// returns nil entries (a full backup) when the host lacks them, when
// Manifest.db is unreadable, or when the encryption setting changed since;
// corrupt is true when Manifest.plist exists but is unusable.
func (s *session) downloadManifest() (held map[string]hostEntry, corrupt bool, err error) {
	tmp, err := os.CreateTemp(s.cfg.TempDir, "backupsvc-hostmanifest-*.db")
	if err != nil {
		return nil, false, fmt.Errorf("backupsvc: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var mp bytes.Buffer
	plistPath, dbPath := s.target+"/Manifest.plist", s.target+"/Manifest.db"
	got, err := s.download([]downloadItem{
		{path: plistPath, w: &mp, limit: maxPlistDownload},
		{path: dbPath, w: tmp, limit: maxManifestDB},
	})
	if err != nil {
		return nil, false, err
	}
	if !got[plistPath] {
		return nil, false, nil
	}
	wasEncrypted, manifestKey, perr := parseManifestPlist(mp.Bytes())
	if perr != nil {
		return nil, true, nil
	}
	if !got[dbPath] || wasEncrypted != (s.keys != nil) {
		return nil, false, nil
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("backupsvc: %w", err)
	}
	dbFile := tmp.Name()
	if s.keys != nil {
		// The device opens the host's copy with its own class keys; one
		// it cannot open (another device's) means a full backup.
		if dbFile, err = s.keys.decryptFile(s.cfg.TempDir, dbFile, manifestKey); err != nil {
			return nil, false, nil
		}
		defer os.Remove(dbFile)
	}
	held, err = readManifestDB(s.ctx, dbFile)
	if err != nil {
		return nil, false, nil // unreadable: start over with a full backup
	}
	return held, false, nil
}

// upload is one file of an UploadFiles round other than data files.
type upload struct {
	deviceName, path string
	r                io.Reader
}

func (s *session) fileWriter() *devicelink.FileWriter {
	if s.fw == nil {
		s.fw = s.dl.NewFileWriter(devicelink.Upload, s.cfg.BlockSize)
	}
	return s.fw
}

// uploadOther sends a few files in one UploadFiles round. done is true
// when the backup ended (the host failed and the device said so).
func (s *session) uploadOther(what string, total int64, files ...upload) (done bool, err error) {
	if err := s.dl.WriteMessage(devicelink.MsgUploadFiles, map[string]any{}, s.progress, uint64(total)); err != nil {
		return true, fmt.Errorf("backupsvc: send UploadFiles: %w", err)
	}
	fw := s.fileWriter()
	for _, u := range files {
		if _, err := fw.SendFile(u.deviceName, u.path, u.r); err != nil {
			return true, fmt.Errorf("backupsvc: upload %s: %w", u.path, err)
		}
	}
	return s.endUploadRound(what)
}

func (s *session) endUploadRound(what string) (bool, error) {
	if err := s.fw.Finish(); err != nil {
		return true, fmt.Errorf("backupsvc: upload: %w", err)
	}
	st, err := s.dl.ReadStatusResponse()
	if err != nil {
		return true, fmt.Errorf("backupsvc: status of UploadFiles: %w", err)
	}
	if st.Code != 0 {
		return true, s.hostFailed(what, st)
	}
	return false, nil
}

// uploadData sends the data files into Snapshot/ in rounds, applying the
// byte and file faults and the hostile upload modes.
func (s *session) uploadData(send []fileset.File, need int64) (done bool, err error) {
	f := s.cfg.Faults
	var sentTotal int64
	first := true
	for len(send) > 0 {
		n, bytesInRound := 0, int64(0)
		for n < len(send) && n < uploadBatchFiles && (n == 0 || bytesInRound+send[n].Size <= uploadBatchBytes) {
			bytesInRound += send[n].Size
			n++
		}
		round := send[:n]
		send = send[n:]
		s.progress = 2 + 88*float64(sentTotal)/float64(max(need, 1))
		if err := s.dl.WriteMessage(devicelink.MsgUploadFiles, map[string]any{}, s.progress, uint64(s.announced(bytesInRound))); err != nil {
			return true, fmt.Errorf("backupsvc: send UploadFiles: %w", err)
		}
		fw := s.fileWriter()
		for _, file := range round {
			devName := file.Domain + "/" + file.RelativePath
			path := s.target + "/Snapshot/" + file.BackupPath()
			if first {
				first = false
				switch f.Hostile {
				case HostileDotDot:
					path = s.target + "/../../backupd-hostile-dotdot"
				case HostileAbsolute:
					path = "/../tmp/backupd-hostile-absolute"
				case HostileSymlink:
					path = s.target + "/Snapshot/link/escape"
				case HostileLongName:
					return true, s.hostileLongName(devName)
				case HostileEndlessFile:
					return true, s.endless(devName, path)
				case HostileInodeFlood:
					return s.inodeFlood(devName, path)
				}
			}
			send := s.sendData
			if s.cannotRead() {
				send = s.sendUnreadable
			}
			if err := send(fw, devName, path, file); err != nil {
				return true, err
			}
			sentTotal += file.Size
			if f.UnplugAfterFiles > 0 && s.sentFiles >= f.UnplugAfterFiles {
				return true, s.unplug()
			}
		}
		if done, err := s.endUploadRound("store the files"); done || err != nil {
			return done, err
		}
	}
	s.progress = 90
	return false, nil
}

// sendData sends one data file, cutting it short where a byte fault
// strikes.
func (s *session) sendData(fw *devicelink.FileWriter, devName, path string, file fileset.File) error {
	f := s.cfg.Faults
	budget := int64(-1)
	if f.UnplugAfterBytes > 0 {
		budget = f.UnplugAfterBytes - s.sentBytes
	}
	if f.StallAfterBytes > 0 && (budget < 0 || f.StallAfterBytes-s.sentBytes < budget) {
		budget = f.StallAfterBytes - s.sentBytes
	}
	if err := fw.Begin(devName, path); err != nil {
		return fmt.Errorf("backupsvc: upload %s: %w", path, err)
	}
	content, err := s.content(file)
	if err != nil {
		return fmt.Errorf("backupsvc: upload %s: %w", path, err)
	}
	if budget >= 0 && budget < s.wireSize(file) {
		n, err := fw.ReadFrom(io.LimitReader(content, budget))
		s.sentBytes += n
		s.stats.bytesSent(n)
		if err != nil {
			return fmt.Errorf("backupsvc: upload %s: %w", path, err)
		}
		if f.StallAfterBytes > 0 && s.sentBytes >= f.StallAfterBytes {
			return s.hang(ErrStalled)
		}
		return s.unplug()
	}
	n, err := fw.ReadFrom(content)
	if err == nil {
		err = fw.End()
	}
	if err != nil {
		return fmt.Errorf("backupsvc: upload %s: %w", path, err)
	}
	s.sentBytes += n
	s.sentFiles++
	s.stats.fileSent(n)
	return nil
}

// content is what the device sends of a file: its bytes, encrypted with
// the file's own key in an encrypted backup.
func (s *session) content(file fileset.File) (io.Reader, error) {
	if s.keys == nil {
		return file.Open(), nil
	}
	return backupcrypt.NewEncrypter(file.Open(), s.keys.fileKey(file.FileID, file.Generation))
}

// wireSize is how many bytes of a file the device sends.
func (s *session) wireSize(file fileset.File) int64 {
	if s.keys == nil {
		return file.Size
	}
	return backupcrypt.EncryptedSize(file.Size)
}

// hostileLongName names a file with a path over the 4096-byte limit.
func (s *session) hostileLongName(devName string) error {
	long := strings.Repeat("a", 5000)
	var b []byte
	b = binary.BigEndian.AppendUint32(b, uint32(len(devName)))
	b = append(b, devName...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(long)))
	b = append(b, long...)
	if err := s.fw.WriteRaw(b); err != nil {
		return fmt.Errorf("backupsvc: hostile write: %w", err)
	}
	return s.hostileRaw(nil)
}

// endless sends content for one file until the host hangs up. Any write
// error ends it: the host stopping the flood is the point.
func (s *session) endless(devName, path string) error {
	if err := s.fw.Begin(devName, path); err != nil {
		return err
	}
	endless := fileset.File{Size: 1 << 62, Mode: fileset.ModeFile, Generation: 1}
	s.fw.ReadFrom(endless.Open())
	return nil
}

// rateWriter caps the byte rate of a link.
type rateWriter struct {
	ctx   context.Context
	w     io.Writer
	rate  int64 // bytes per second
	start time.Time
	sent  int64
}

func (r *rateWriter) Write(p []byte) (int, error) {
	written := 0
	// Chunks of a twentieth of a second keep the rate smooth.
	chunk := int(max(r.rate/20, 1))
	for len(p) > 0 {
		n := min(len(p), chunk)
		// Where the schedule says we may be after sending n more bytes.
		due := r.start.Add(time.Duration(float64(r.sent+int64(n)) / float64(r.rate) * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.ctx.Done():
				t.Stop()
				return written, r.ctx.Err()
			}
		}
		m, err := r.w.Write(p[:n])
		written += m
		r.sent += int64(m)
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}
