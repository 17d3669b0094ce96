package backupsvc

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/backupd/backupd/proto/backupcrypt"
	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/notification"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim/fileset"
)

// A restore, the device side of the host's Restore request, in the order
// the device drives it (see shared/protocol.md, "Restore"):
//
//	restore-check     Find My (211), a restore since the last reboot (102),
//	                  the passcode prompt (208)
//	restore-status    DownloadFiles <source>/Status.plist: SnapshotState finished
//	restore-manifest  DownloadFiles <source>/Manifest.plist and Manifest.db;
//	                  an encrypted backup needs the right Password (207)
//	restore-info      DownloadFiles <source>/Info.plist
//	restore-files     DownloadFiles <source>/xx/<fileID> for every file
//	                  Manifest.db lists, in batches
//	restore-final     ProcessMessage Response {ErrorCode}
//
// Each file received is checked, by SHA-256, against the content the
// device had at the generation the backup's Manifest.db records, so a
// restore of an older version is checked against that version. The
// outcome is in RestoreState.Last.
const (
	StepRestoreCheck    Step = "restore-check"
	StepRestoreStatus   Step = "restore-status"
	StepRestoreManifest Step = "restore-manifest"
	StepRestoreInfo     Step = "restore-info"
	StepRestoreFiles    Step = "restore-files"
	StepRestoreFinal    Step = "restore-final"
)

// RestoreSteps returns the steps of a restore in protocol order.
func RestoreSteps() []Step {
	return []Step{StepRestoreCheck, StepRestoreStatus, StepRestoreManifest, StepRestoreInfo, StepRestoreFiles, StepRestoreFinal}
}

// Hostile restore modes: before the real downloads, the device asks for
// files outside the backup it is restoring from. A host that confines
// paths sends none of their bytes; the device counts what it got
// (RestoreReport.HostileBytes) and then carries on, so a host that ends
// the restore instead is behaving correctly too. idevicebackup2 does not
// confine paths: use these only against backupd's own engine.
const (
	// HostileRestoreDotDot asks for <source>/../../../../../../../../etc/passwd.
	HostileRestoreDotDot Hostile = "restore-dotdot"
	// HostileRestoreAbsolute asks for /etc/passwd.
	HostileRestoreAbsolute Hostile = "restore-absolute"
	// HostileRestoreOther asks for another phone's folder: the target's
	// own <target>/Manifest.plist and Status.plist when the host restores
	// another phone's backup (SourceIdentifier ≠ TargetIdentifier), else
	// those of a made-up UDID beside the source.
	HostileRestoreOther Hostile = "restore-other"
	// HostileRestoreMutate asks the host to change the backup it restores
	// from: RemoveItems, MoveItems, CreateDirectory, CopyItem and an
	// UploadFiles over Manifest.plist, each inside <source>/. A host must
	// refuse them all (RestoreReport.MutationsAccepted stays 0) and may
	// carry on with the restore.
	HostileRestoreMutate Hostile = "restore-mutate"
)

// RestoreHostileModes returns the hostile modes of a restore.
func RestoreHostileModes() []Hostile {
	return []Hostile{HostileRestoreDotDot, HostileRestoreAbsolute, HostileRestoreOther, HostileRestoreMutate}
}

// Device error codes of a restore's final Response.
const (
	CodeRestoreNeedsReboot = 102 // a second restore without a reboot in between
	CodeFindMyEnabled      = 211 // Find My is on
)

// Limits on what the device takes from the host during a restore.
const (
	// restoreBatchFiles and restoreBatchBytes size one DownloadFiles
	// request.
	restoreBatchFiles = 500
	restoreBatchBytes = 64 << 20
	// restoreSlack is how far past the size Manifest.db records a file
	// may run before the device stops taking it: past it the host is
	// sending a different file, and the session ends.
	restoreSlack = 64 << 20
)

// RestoreState is what a device remembers about restores across
// connections: whether Find My is on, whether it restored since it last
// started, and what the last restore received. Safe for concurrent use.
type RestoreState struct {
	mu                sync.Mutex
	findMy            bool
	restoredSinceBoot bool
	rebootPending     bool
	current           RestoreReport
	last              RestoreReport
	restores          int
}

// RestoreReport describes one restore as the device saw it.
type RestoreReport struct {
	// Source and Target are the identifiers the host sent.
	Source, Target string
	// Options are the host's Restore options, Password left out (only
	// HasPassword says whether there was one).
	Options     map[string]any
	HasPassword bool
	// Asked is how many data files the device asked for; Intact how many
	// arrived with the content the device had at the backed-up
	// generation; Damaged, Missing and Unknown name the others by fileID
	// (content differs; the host sent an error or nothing; a fileID this
	// device never had), sorted.
	Asked, Intact             int
	Damaged, Missing, Unknown []string
	// Bytes counts data file content received.
	Bytes int64
	// MetaFiles names the other files received (Status.plist, ...), as
	// the paths asked for.
	MetaFiles []string
	// HostileAsked lists the paths outside the backup the device asked
	// for (hostile modes), and HostileBytes the content bytes the host
	// sent for them: 0 from a host that confines paths.
	HostileAsked []string
	HostileBytes int64
	// MutationsAsked counts the requests to change the backup the device
	// made (hostile mode restore-mutate), MutationsAccepted the ones the
	// host answered with success.
	MutationsAsked, MutationsAccepted int
	// ErrorCode and ErrorText are the final Response; Done is false while
	// the restore runs or when it never got to its final Response.
	ErrorCode int
	ErrorText string
	Done      bool
	// Started is when the Restore request came, before the device asked
	// for any byte; Finished when its final Response went out.
	Started  time.Time
	Finished time.Time
}

// NewRestoreState returns the state of a device that has just started,
// with Find My off.
func NewRestoreState() *RestoreState { return &RestoreState{} }

// SetFindMy turns Find My on or off.
func (r *RestoreState) SetFindMy(on bool) {
	r.mu.Lock()
	r.findMy = on
	r.mu.Unlock()
}

// Booted records that the device started again: the next restore is
// allowed.
func (r *RestoreState) Booted() {
	r.mu.Lock()
	r.restoredSinceBoot = false
	r.mu.Unlock()
}

// TakeReboot reports whether a finished restore asked the device to
// reboot, and clears the request. The caller reboots the device (and
// calls Booted).
func (r *RestoreState) TakeReboot() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.rebootPending
	r.rebootPending = false
	return p
}

// Last describes the last restore that reached its final Response, and
// Current the one in progress or the last one that ended either way.
func (r *RestoreState) Last() RestoreReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last.clone()
}

// Current describes the restore in progress, or the last one.
func (r *RestoreState) Current() RestoreReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current.clone()
}

// Restores counts the restores that reached their final Response.
func (r *RestoreState) Restores() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.restores
}

func (rep RestoreReport) clone() RestoreReport {
	rep.Options = maps.Clone(rep.Options)
	rep.Damaged = slices.Clone(rep.Damaged)
	rep.Missing = slices.Clone(rep.Missing)
	rep.Unknown = slices.Clone(rep.Unknown)
	rep.MetaFiles = slices.Clone(rep.MetaFiles)
	rep.HostileAsked = slices.Clone(rep.HostileAsked)
	return rep
}

func (r *RestoreState) update(f func(*RestoreReport)) {
	r.mu.Lock()
	f(&r.current)
	r.mu.Unlock()
}

// finished records the final Response; a successful restore is
// remembered until the next boot, and asks for one unless the host said
// not to reboot.
func (r *RestoreState) finished(code int, text string, reboot bool, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.current.ErrorCode, r.current.ErrorText = code, text
	r.current.Done, r.current.Finished = true, at
	slices.Sort(r.current.Damaged)
	slices.Sort(r.current.Missing)
	slices.Sort(r.current.Unknown)
	r.last = r.current.clone()
	r.restores++
	if code == CodeOK {
		r.restoredSinceBoot = true
		r.rebootPending = reboot
	}
}

// restoreRun is the state of one restore.
type restoreRun struct {
	*session
	st       *RestoreState
	source   string
	password string
	hasPW    bool
	// keys are the class keys of an encrypted backup's keybag, unlocked
	// with the password; nil for a plain backup.
	keys *backupcrypt.ClassKeys
	// received counts data file bytes and files, for the byte and file
	// faults.
	bytes  int64
	nfiles int
}

// restore serves the host's Restore request.
func (s *session) restore(req map[string]any) error {
	st := s.cfg.Restore
	if st == nil {
		st = NewRestoreState()
	}
	s.sentBytes, s.sentFiles, s.progress = 0, 0, 0
	r := &restoreRun{session: s, st: st, source: s.target}
	if src, ok := req["SourceIdentifier"].(string); ok && src != "" {
		r.source = src
	}
	opts, _ := req["Options"].(map[string]any)
	r.password, r.hasPW = opts["Password"].(string)
	shown := maps.Clone(opts)
	delete(shown, "Password")
	st.update(func(rep *RestoreReport) {
		*rep = RestoreReport{Source: r.source, Target: s.target, Options: shown, HasPassword: r.hasPW, Started: s.cfg.Now()}
	})
	// RestoreShouldReboot is absent unless the host says no.
	reboot, set := opts["RestoreShouldReboot"].(bool)
	code, text, err := r.run()
	if err != nil {
		return err
	}
	// Recorded before the Response goes out, so that a host that has it
	// finds the report complete.
	st.finished(code, text, reboot || !set, s.cfg.Now())
	return s.finish(code, text)
}

// run drives a restore to the code of its final Response. An error ends
// the session without one (the host left, or a fault struck).
func (r *restoreRun) run() (int, string, error) {
	if code, text, err := r.check(); code != 0 || err != nil {
		return code, text, err
	}
	if err := r.hostile(); err != nil {
		return 0, "", err
	}

	if err := r.enter(StepRestoreStatus); err != nil {
		return 0, "", err
	}
	status, got, err := r.fetchSmall(r.source + "/Status.plist")
	if err != nil {
		return 0, "", err
	}
	if !got {
		return CodeCorruptManifest, "The backup on the computer has no Status.plist", nil
	}
	if hs, err := parseStatusPlist(status); err != nil || hs.state != "finished" {
		return CodeCorruptManifest, "The backup on the computer is not a finished backup", nil
	}

	if err := r.enter(StepRestoreManifest); err != nil {
		return 0, "", err
	}
	held, code, text, err := r.manifest()
	if code != 0 || err != nil {
		return code, text, err
	}

	if err := r.enter(StepRestoreInfo); err != nil {
		return 0, "", err
	}
	if _, got, err := r.fetchSmall(r.source + "/Info.plist"); err != nil {
		return 0, "", err
	} else if !got {
		return CodeCorruptManifest, "The backup on the computer has no Info.plist", nil
	}

	if err := r.enter(StepRestoreFiles); err != nil {
		return 0, "", err
	}
	if err := r.wait(r.cfg.Faults.ThinkPause); err != nil { // preparing to write
		return 0, "", err
	}
	if err := r.files(held); err != nil {
		return 0, "", err
	}
	if err := r.wait(r.cfg.Faults.ThinkPause); err != nil { // applying the restore
		return 0, "", err
	}

	if err := r.enter(StepRestoreFinal); err != nil {
		return 0, "", err
	}
	r.progress = 100
	if rep := r.st.Current(); len(rep.Missing) > 0 {
		return CodeCorruptManifest, fmt.Sprintf("%d files of the backup could not be downloaded", len(rep.Missing)), nil
	}
	return CodeOK, "", nil
}

// check refuses a restore the way a phone does before it asks for
// anything: Find My on, a restore since the last reboot, a forced error
// code, the passcode nobody enters.
func (r *restoreRun) check() (int, string, error) {
	if err := r.enter(StepRestoreCheck); err != nil {
		return 0, "", err
	}
	f := r.cfg.Faults
	if f.PasscodeNeverEntered || f.ErrorCode == CodePasscodeNotEntered || f.PasscodeDelay > 0 {
		var early <-chan struct{}
		if r.cfg.PasscodeEntered != nil {
			early = r.cfg.PasscodeEntered()
		}
		r.relay(notification.PasscodePresented)
		entered, err := r.waitUntil(f.PasscodeDelay, early)
		r.relay(notification.PasscodeDismissed)
		if err != nil {
			return 0, "", err
		}
		if !entered && (f.PasscodeNeverEntered || f.ErrorCode == CodePasscodeNotEntered) {
			return CodePasscodeNotEntered, "The passcode was not entered on the device in time to restore it", nil
		}
	}
	if err := r.wait(f.FirstMessageDelay + f.ThinkPause); err != nil {
		return 0, "", err
	}
	r.st.mu.Lock()
	findMy, again := r.st.findMy, r.st.restoredSinceBoot
	r.st.mu.Unlock()
	switch {
	case findMy || f.ErrorCode == CodeFindMyEnabled:
		return CodeFindMyEnabled, "Find My iPhone must be turned off before restoring a backup", nil
	case again || f.ErrorCode == CodeRestoreNeedsReboot:
		return CodeRestoreNeedsReboot, "The device must be restarted before it can be restored again", nil
	case f.ErrorCode != 0 && f.ErrorCode != CodeWrongPassword && f.ErrorCode != CodePasscodeNotEntered:
		return f.ErrorCode, fmt.Sprintf("Simulated device error %d", f.ErrorCode), nil
	}
	return 0, "", nil
}

// fetchSmall downloads one plist-sized file into memory.
func (r *restoreRun) fetchSmall(p string) ([]byte, bool, error) {
	var b bytes.Buffer
	got, err := r.download([]downloadItem{{path: p, w: &b, limit: maxPlistDownload}})
	if err != nil {
		return nil, false, r.faultOr(err)
	}
	if got[p] {
		r.st.update(func(rep *RestoreReport) { rep.MetaFiles = append(rep.MetaFiles, p) })
	}
	return b.Bytes(), got[p], nil
}

// manifest downloads Manifest.plist and Manifest.db, checks the password
// of an encrypted backup and returns what Manifest.db lists.
func (r *restoreRun) manifest() (map[string]hostEntry, int, string, error) {
	tmp, err := os.CreateTemp(r.cfg.TempDir, "backupsvc-restore-*.db")
	if err != nil {
		return nil, 0, "", fmt.Errorf("backupsvc: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var mp bytes.Buffer
	plistPath, dbPath := r.source+"/Manifest.plist", r.source+"/Manifest.db"
	got, err := r.download([]downloadItem{
		{path: plistPath, w: &mp, limit: maxPlistDownload},
		{path: dbPath, w: tmp, limit: maxManifestDB},
	})
	if err != nil {
		return nil, 0, "", r.faultOr(err)
	}
	r.st.update(func(rep *RestoreReport) {
		for _, p := range []string{plistPath, dbPath} {
			if got[p] {
				rep.MetaFiles = append(rep.MetaFiles, p)
			}
		}
	})
	if !got[plistPath] || !got[dbPath] {
		return nil, CodeCorruptManifest, "The backup on the computer lacks its Manifest.plist or Manifest.db", nil
	}
	var m map[string]any
	if err := wire.Decode(mp.Bytes(), &m); err != nil {
		return nil, CodeCorruptManifest, "The backup's Manifest.plist is corrupt", nil
	}
	if err := tmp.Close(); err != nil {
		return nil, 0, "", fmt.Errorf("backupsvc: %w", err)
	}
	dbFile := tmp.Name()
	if enc, _ := m["IsEncrypted"].(bool); enc || r.cfg.Faults.ErrorCode == CodeWrongPassword {
		if !r.hasPW || r.cfg.Faults.ErrorCode == CodeWrongPassword {
			return nil, CodeWrongPassword, "The backup password is incorrect", nil
		}
		var code int
		var text string
		if r.keys, code, text = r.unlock(m); code != 0 {
			return nil, code, text, nil
		}
		// Manifest.db is encrypted with the key ManifestKey wraps.
		mk, _ := m["ManifestKey"].([]byte)
		key, err := r.keys.Unwrap(mk)
		if err != nil {
			return nil, CodeCorruptManifest, "The backup's ManifestKey does not open with its keybag", nil
		}
		plain, err := transformFile(r.cfg.TempDir, dbFile, func(in io.Reader) (io.Reader, error) { return backupcrypt.NewDecrypter(in, key, -1) })
		if err != nil {
			return nil, CodeCorruptManifest, "The backup's Manifest.db does not decrypt", nil
		}
		defer os.Remove(plain)
		dbFile = plain
	}
	held, err := readManifestDB(r.ctx, dbFile)
	if err != nil {
		return nil, CodeCorruptManifest, "The backup's Manifest.db is corrupt", nil
	}
	return held, 0, "", nil
}

// unlock opens the backup's keybag (Manifest.plist BackupKeyBag) with
// the password the host sent, as a phone does before it restores an
// encrypted backup: a password that does not unwrap its class keys is
// ErrorCode 207.
func (r *restoreRun) unlock(manifest map[string]any) (*backupcrypt.ClassKeys, int, string) {
	raw, _ := manifest["BackupKeyBag"].([]byte)
	kb, err := backupcrypt.ParseKeybag(raw)
	if err != nil {
		return nil, CodeCorruptManifest, "The backup's keybag is corrupt"
	}
	keys, err := kb.Unlock(r.ctx, []byte(r.password))
	if errors.Is(err, backupcrypt.ErrWrongPassword) {
		return nil, CodeWrongPassword, "The backup password is incorrect"
	}
	if err != nil {
		return nil, CodeCorruptManifest, "The backup's keybag does not open"
	}
	return keys, 0, ""
}

// restoreFile is one data file the device asks for.
type restoreFile struct {
	id   string
	size int64
	want [32]byte
	ok   bool // want is known: the device had this file
	// key decrypts the file of an encrypted backup; badKey: its
	// EncryptionKey does not unwrap, so it cannot be right.
	key    []byte
	badKey bool
}

// files asks for every data file Manifest.db lists, in batches, and
// checks each against the content the device had at that generation.
func (r *restoreRun) files(held map[string]hostEntry) error {
	var list []restoreFile
	var total int64
	for _, id := range slices.Sorted(maps.Keys(held)) {
		e := held[id]
		if e.flags != flagFile {
			continue
		}
		rf := restoreFile{id: id, size: e.size}
		if r.keys != nil {
			k, err := r.keys.Unwrap(e.key)
			rf.key, rf.badKey = k, err != nil
		}
		var f fileset.File
		var known bool
		if e.hasGen {
			f, known = r.cfg.Set.AsOf(id, e.generation)
		} else {
			f, known = r.cfg.Set.AsOf(id, 1)
		}
		if known {
			rf.want, rf.ok = fileset.Hash(f), true
		}
		list = append(list, rf)
		total += e.size
	}
	r.st.update(func(rep *RestoreReport) { rep.Asked = len(list) })
	var done int64
	for len(list) > 0 {
		n, bytesIn := 0, int64(0)
		for n < len(list) && n < restoreBatchFiles && (n == 0 || bytesIn+list[n].size <= restoreBatchBytes) {
			bytesIn += list[n].size
			n++
		}
		r.progress = 5 + 94*float64(done)/float64(max(total, 1))
		if err := r.batch(list[:n]); err != nil {
			return err
		}
		done += bytesIn
		list = list[n:]
	}
	return nil
}

// batch downloads one batch of data files.
func (r *restoreRun) batch(list []restoreFile) error {
	items := make([]downloadItem, len(list))
	sums := make([]*fileSum, len(list))
	for i, rf := range list {
		sums[i] = &fileSum{run: r, h: sha256.New()}
		if rf.key != nil {
			dec, err := newPlainSum(rf.key, sums[i].h)
			if err != nil {
				return fmt.Errorf("backupsvc: %w", err)
			}
			sums[i].dec = dec
		}
		items[i] = downloadItem{path: r.source + "/" + fileset.BackupPath(rf.id), w: sums[i], limit: rf.size + restoreSlack}
	}
	got, err := r.download(items)
	if err != nil {
		return r.faultOr(err)
	}
	for i, rf := range list {
		if got[items[i].path] {
			r.nfiles++
		}
		plainOK := sums[i].finish()
		var sum [32]byte
		sums[i].h.Sum(sum[:0])
		r.st.update(func(rep *RestoreReport) {
			switch {
			case !got[items[i].path]:
				rep.Missing = append(rep.Missing, rf.id)
			case !rf.ok:
				rep.Unknown = append(rep.Unknown, rf.id)
			case rf.badKey || !plainOK || sum != rf.want || sums[i].n != rf.size:
				rep.Damaged = append(rep.Damaged, rf.id)
			default:
				rep.Intact++
			}
		})
		if f := r.cfg.Faults; f.UnplugAfterFiles > 0 && r.nfiles >= f.UnplugAfterFiles {
			return r.unplug()
		}
	}
	return nil
}

// errStall is what a fileSum returns when the stall fault strikes.
var errStall = errors.New("backupsvc: the device stops taking files")

// fileSum hashes a file as it arrives, its plain content when it is
// encrypted, and applies the byte faults.
type fileSum struct {
	run *restoreRun
	h   hash.Hash
	n   int64     // plain bytes hashed
	dec *plainSum // decrypts an encrypted file into h
}

func (f *fileSum) Write(p []byte) (int, error) {
	if f.dec != nil {
		f.dec.Write(p)
	} else {
		f.h.Write(p)
		f.n += int64(len(p))
	}
	return len(p), f.run.got(len(p))
}

// finish ends the file: false when encrypted content was not whole
// (its length or padding is wrong).
func (f *fileSum) finish() bool {
	if f.dec == nil {
		return true
	}
	ok := f.dec.finish()
	f.n = f.dec.n
	return ok
}

// got counts received content and strikes the byte faults.
func (r *restoreRun) got(n int) error {
	r.bytes += int64(n)
	r.st.update(func(rep *RestoreReport) { rep.Bytes += int64(n) })
	f := r.cfg.Faults
	switch {
	case f.UnplugAfterBytes > 0 && r.bytes >= f.UnplugAfterBytes:
		return r.unplug()
	case f.StallAfterBytes > 0 && r.bytes >= f.StallAfterBytes:
		return errStall
	}
	return nil
}

// faultOr turns a download cut short by a fault into the fault's error.
func (r *restoreRun) faultOr(err error) error {
	switch {
	case errors.Is(err, ErrUnplugged):
		return ErrUnplugged
	case errors.Is(err, errStall):
		// Stop asking for anything: the host waits for a request that
		// never comes.
		return r.hang(ErrStalled)
	}
	return err
}

// hostile asks for paths outside the backup, as the hostile modes say,
// and counts the bytes the host sends for them.
func (r *restoreRun) hostile() error {
	var paths []string
	switch r.cfg.Faults.Hostile {
	case HostileRestoreMutate:
		return r.mutate()
	case HostileRestoreDotDot:
		paths = []string{r.source + "/../../../../../../../../etc/passwd"}
	case HostileRestoreAbsolute:
		paths = []string{"/etc/passwd"}
	case HostileRestoreOther:
		other := r.target
		if other == r.source {
			other = "0000000000000000000000000000000000000000"
		}
		paths = []string{other + "/Manifest.plist", other + "/Status.plist"}
	default:
		return nil
	}
	r.st.update(func(rep *RestoreReport) { rep.HostileAsked = append(rep.HostileAsked, paths...) })
	items := make([]downloadItem, len(paths))
	counts := make([]*countWriter, len(paths))
	for i, p := range paths {
		counts[i] = &countWriter{}
		items[i] = downloadItem{path: p, w: counts[i], limit: maxPlistDownload}
	}
	_, err := r.download(items)
	var n int64
	for _, c := range counts {
		n += c.n
	}
	r.st.update(func(rep *RestoreReport) { rep.HostileBytes += n })
	if err != nil {
		if isHangup(err) {
			return fmt.Errorf("backupsvc: the host hung up on a hostile download: %w", err)
		}
		return err
	}
	return nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// mutate asks the host to change the backup it restores from, and counts
// what it accepted.
func (r *restoreRun) mutate() error {
	src := r.source
	asks := []struct {
		name string
		args []any
	}{
		{devicelink.MsgRemoveItems, []any{[]any{src + "/Manifest.db"}, map[string]any{}, r.progress}},
		{devicelink.MsgMoveItems, []any{map[string]any{src + "/Status.plist": src + "/Status.moved"}, map[string]any{}, r.progress}},
		{devicelink.MsgCreateDirectory, []any{src + "/backupd-hostile-dir"}},
		{devicelink.MsgCopyItem, []any{src + "/Manifest.plist", src + "/Manifest.copy"}},
	}
	record := func(st devicelink.StatusResponse) {
		r.st.update(func(rep *RestoreReport) {
			rep.MutationsAsked++
			if st.Code == 0 {
				rep.MutationsAccepted++
			}
		})
	}
	for _, a := range asks {
		st, err := r.ask(a.name, a.args...)
		if err != nil {
			return err
		}
		record(st)
	}
	junk := []byte("not a manifest")
	if err := r.dl.WriteMessage(devicelink.MsgUploadFiles, map[string]any{}, r.progress, uint64(len(junk))); err != nil {
		return fmt.Errorf("backupsvc: send UploadFiles: %w", err)
	}
	fw := r.fileWriter()
	if _, err := fw.SendFile("Manifest.plist", src+"/Manifest.plist", bytes.NewReader(junk)); err != nil {
		return fmt.Errorf("backupsvc: upload: %w", err)
	}
	if err := fw.Finish(); err != nil {
		return fmt.Errorf("backupsvc: upload: %w", err)
	}
	st, err := r.dl.ReadStatusResponse()
	if err != nil {
		return fmt.Errorf("backupsvc: status of UploadFiles: %w", err)
	}
	record(st)
	return nil
}
