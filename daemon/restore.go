package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/backupd/backupd/backup"
	"github.com/backupd/backupd/backup/repo"
	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/offline"
	"github.com/backupd/backupd/store"
	"github.com/backupd/backupd/usbmux"
)

// This file is a restore: the API's request, checked and resolved to one
// kept backup, handed to the phone's actor, which runs it as an attempt
// of its own (so no backup of that phone runs meanwhile): the safety
// backup, the pin, the engine's restore and the run record.

// restorer is the part of *backup.Engine that restores; a test's
// stand-in Backuper may lack it.
type restorer interface {
	Restore(ctx context.Context, dev usbmux.Device, t backup.RestoreTarget) (backup.RestoreResult, error)
}

// restoreReq is a restore the API accepted. It holds the password: it
// is never logged, and only opts carries it, to the engine.
type restoreReq struct {
	source string
	// name is the backup's name as Resolve gave it.
	name      string
	encrypted bool
	safety    bool
	opts      backup.RestoreOptions
	// pin holds the backup from the request on, unless it is the
	// target's own latest and a safety backup comes first: that pin
	// would keep the safety backup from starting, so the actor pins the
	// name after it (by then it is a version).
	pin *repo.Pin
}

// release lets the backup go, if it was pinned.
func (r *restoreReq) release() {
	if r != nil && r.pin != nil {
		r.pin.Release()
	}
}

// restore serves POST /devices/{udid}/restore: it resolves the backup
// to restore, refuses what cannot work before anything happens, and
// hands the restore to the phone's actor. The password is never logged.
func (d *Daemon) restore(ctx context.Context, udid string, req api.RestoreRequest) (api.RestoreResponse, error) {
	resp := api.RestoreResponse{UDID: udid}
	if err := repo.ValidUDID(udid); err != nil {
		return resp, &api.Error{Code: api.ErrBadRequest, Message: err.Error()}
	}
	a, err := d.requestActor(udid)
	if err != nil {
		return resp, err
	}
	if _, ok := d.eng.(restorer); !ok {
		return resp, errors.New("this daemon's backup engine cannot restore")
	}
	rr, err := d.resolveRestore(ctx, udid, req)
	if err != nil {
		return resp, err
	}
	resp.Name, resp.Source, resp.Version, resp.SafetyBackup = a.snapshotName(), rr.source, rr.name, rr.safety
	ctx, cancel := context.WithTimeout(ctx, manualTimeout)
	defer cancel()
	reply := make(chan error, 1)
	if !a.send(ctx, actorMsg{kind: msgRestore, restore: rr, reply: reply}) {
		rr.release()
		return resp, untaken(ctx)
	}
	select {
	case err = <-reply:
	case <-ctx.Done():
		// The actor has the request and may yet run it: it releases the pin.
		return resp, &api.Error{Code: api.ErrUnavailable, Message: "the device's worker did not answer: " + ctx.Err().Error()}
	}
	if err != nil {
		rr.release()
		return resp, requestError(err)
	}
	d.log.Info().Str("udid", udid).Str("source", rr.source).Str("version", rr.name).Bool("safety_backup", rr.safety).
		Bool("skip_apps", rr.opts.SkipApps).Bool("no_reboot", rr.opts.NoReboot).Msg("restore requested through the API")
	resp.Message = "restore accepted; follow it on " + api.Prefix + "/events"
	if rr.safety {
		resp.Message = "a safety backup runs first, then the restore; follow them on " + api.Prefix + "/events"
	}
	return resp, nil
}

// resolveRestore names the one backup req means and pins it when it can
// be pinned now.
func (d *Daemon) resolveRestore(ctx context.Context, udid string, req api.RestoreRequest) (*restoreReq, error) {
	rr := &restoreReq{source: req.Source, safety: req.WantsSafetyBackup()}
	if rr.source == "" {
		rr.source = udid
	}
	if err := repo.ValidUDID(rr.source); err != nil {
		return nil, &api.Error{Code: api.ErrBadRequest, Message: "source: " + err.Error()}
	}
	rp, _, err := d.ensureRepo(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup_dir %s cannot be opened: %w", d.cfg.BackupDir, err)
	}
	v, name, err := rp.Resolve(rr.source, req.From)
	if errors.Is(err, repo.ErrNoSuchVersion) {
		return nil, &api.Error{Code: api.ErrNotFound, Message: err.Error() + " (backupd versions " + rr.source + " lists the backups kept)"}
	}
	if err != nil {
		return nil, err
	}
	rr.name = name
	rr.encrypted = offline.Encrypted(v.Path)
	if rr.encrypted && req.Password == "" {
		return nil, &api.Error{Code: api.ErrBadRequest, Message: "the backup " + rr.name + " is encrypted: give its password"}
	}
	rr.opts = backup.DefaultRestoreOptions()
	rr.opts.SkipApps, rr.opts.NoReboot, rr.opts.Password = req.SkipApps, req.NoReboot, req.Password
	ownLatest := rr.source == udid && v.Latest
	if rr.safety && ownLatest {
		if !rp.KeepsVersions() {
			// The safety backup would replace, and delete, the very
			// backup to restore.
			return nil, &api.Error{Code: api.ErrBadRequest, Message: "backup_dir keeps no older versions (backup.keep_versions = 0 or clone = \"none\"), so a safety backup would delete the backup to restore: " +
				"keep versions (keep_versions = 1 or more), or restore without a safety backup (--no-safety-backup)"}
		}
		return rr, nil
	}
	if rr.pin, err = rp.Pin(rr.source, name); err != nil {
		return nil, pinError(err)
	}
	return rr, nil
}

// pinError is the API's answer to a backup that could not be pinned.
func pinError(err error) error {
	switch {
	case errors.Is(err, repo.ErrNoSuchVersion):
		return &api.Error{Code: api.ErrNotFound, Message: err.Error()}
	case errors.Is(err, repo.ErrBusy):
		return &api.Error{Code: api.ErrBusy, Message: "a backup of the phone whose backup is to be restored is under way; try again when it has ended"}
	}
	return err
}

// requestError turns an actor's refusal into the API's answer.
func requestError(err error) error {
	var refused *refusedError
	switch {
	case errors.Is(err, errNotConnected):
		return &api.Error{Code: api.ErrNotConnected, Message: err.Error()}
	case errors.Is(err, errBusy):
		return &api.Error{Code: api.ErrBusy, Message: err.Error()}
	case errors.Is(err, errStopping):
		return &api.Error{Code: api.ErrUnavailable, Message: err.Error()}
	case errors.As(err, &refused):
		return &api.Error{Code: api.ErrRefused, Message: err.Error()}
	}
	return err
}

// versions serves GET /devices/{udid}/versions: the kept backups of any
// phone with backups in backup_dir, connected or not, verified; with
// from, only the one a restore from it would restore.
func (d *Daemon) versions(ctx context.Context, udid, from string) (api.VersionsResponse, error) {
	resp := api.VersionsResponse{UDID: udid}
	if err := repo.ValidUDID(udid); err != nil {
		return resp, &api.Error{Code: api.ErrBadRequest, Message: err.Error()}
	}
	rp, _, err := d.ensureRepo(ctx)
	if err != nil {
		return resp, fmt.Errorf("backup_dir %s cannot be opened: %w", d.cfg.BackupDir, err)
	}
	if resp.Versions, err = offline.Versions(ctx, rp, udid); err != nil {
		return resp, err
	}
	if from != "" && len(resp.Versions) > 0 {
		_, id, err := rp.Resolve(udid, from)
		if errors.Is(err, repo.ErrNoSuchVersion) {
			return resp, &api.Error{Code: api.ErrNotFound, Message: err.Error()}
		}
		if err != nil {
			return resp, err
		}
		resp.Versions = slices.DeleteFunc(resp.Versions, func(v api.VersionInfo) bool { return v.ID != id })
	}
	if len(resp.Versions) == 0 {
		return resp, &api.Error{Code: api.ErrNotFound, Message: fmt.Sprintf("there is no backup of %s in %s", udid, rp.Dir())}
	}
	if dev, err := d.store.Device(udid); err == nil {
		resp.Name = dev.Name
	}
	return resp, nil
}

// restore: someone asked for a restore. It waits for a check under way
// to end; it is refused while a backup runs or another request waits.
func (l *loop) restore(m actorMsg) {
	if err := l.refusal(); err != nil {
		m.reply <- err
		return
	}
	req := attemptReq{trigger: store.TriggerManual, manual: true, restore: m.restore}
	switch {
	case l.cur == nil:
		l.start(req)
	case l.pending != nil && (l.pending.manual || l.pending.restore != nil):
		m.reply <- errBusy
		return
	default:
		l.pending = &req
	}
	m.reply <- nil
}

// dropPending forgets the request that was to follow the attempt under
// way, letting go of a restore's pin.
func (l *loop) dropPending() {
	if l.pending != nil {
		l.pending.restore.release()
	}
	l.pending = nil
}

// restoreAttempt runs a restore for the actor: the checks, the safety
// backup, the pin and the engine's restore, and records it as a run of
// kind restore. Whatever happens, it ends with a restore run in the
// history, so someone waiting for it hears how it went.
func (a *actor) restoreAttempt(ctx context.Context, req attemptReq) attemptResult {
	rr := req.restore
	defer rr.release()
	a.setPhase(phaseRestore)
	defer a.setPhase(phaseIdle)
	a.setState(api.StateChecking, cause.None, "", time.Time{})
	out := attemptResult{kind: resRestored}
	run := store.Run{
		UDID: a.udid, Trigger: store.TriggerManual, Kind: store.KindRestore, Source: rr.source, Version: rr.name,
		Encrypted: rr.encrypted, Link: req.dev.ConnType, LinkSpeed: req.dev.Speed,
	}
	dev, facts, err := a.restoreChecks(ctx, req.dev)
	run.DeviceName, run.IOSVersion = facts.Name, facts.ProductVersion
	if err != nil {
		return a.restoreRefused(ctx, run, err, "")
	}
	req.dev = dev
	rp, target, err := a.d.ensureRepo(ctx)
	if err != nil {
		return a.restoreRefused(ctx, run, err, "")
	}
	if rr.safety {
		note, err := a.safetyBackup(ctx, req, facts, rp, target, rr)
		if err != nil {
			return a.restoreRefused(ctx, run, err, "the safety backup failed, so nothing was restored")
		}
		run.Note = note
	}
	if rr.pin == nil {
		if rr.pin, err = rp.Pin(rr.source, rr.name); err != nil {
			return a.restoreRefused(ctx, run, pinCause(err), "")
		}
	}
	a.setPhase(phaseRestore)
	a.runRestore(ctx, req, rp, run)
	return out
}

// restoreChecks finds the phone and checks it trusts this computer, and
// reads its facts.
func (a *actor) restoreChecks(ctx context.Context, dev usbmux.Device) (usbmux.Device, usbmux.Facts, error) {
	d := a.d
	if found, ok := d.findDevice(ctx, a.udid, dev.ConnType); ok {
		dev = found
	}
	trust, err := a.checkTrust(ctx, dev)
	if err != nil {
		return dev, usbmux.Facts{}, err
	}
	if trust != usbmux.Trusted {
		return dev, usbmux.Facts{}, cause.Errorf(trust.Cause(), "the iPhone does not trust this computer (%s)", trust)
	}
	facts, err := d.mux.Facts(ctx, dev)
	if err != nil {
		return dev, facts, err
	}
	a.noteFacts(attemptReq{dev: dev}, facts, d.now())
	return dev, facts, nil
}

// safetyBackup backs the phone up as a backup of its own (its own run,
// noted as a safety backup) and marks what it committed, so that
// `backupd versions` names it. It returns the restore's note about it.
func (a *actor) safetyBackup(ctx context.Context, req attemptReq, facts usbmux.Facts, rp *repo.Repo, target backup.Repository, rr *restoreReq) (string, error) {
	why := fmt.Sprintf("safety backup before restoring %s of %s", rr.name, rr.source)
	res := a.backup(ctx, attemptReq{trigger: store.TriggerManual, manual: true, dev: req.dev, note: why}, facts, target, false)
	a.setPhase(phaseRestore)
	if res.kind != resSuccess {
		if c := context.Cause(ctx); c != nil {
			return "", c
		}
		code := res.cause
		if code == cause.None {
			code = cause.Unknown
		}
		return "", cause.Errorf(code, "the safety backup failed")
	}
	v, id, err := rp.Resolve(a.udid, repo.LatestName)
	if err == nil {
		err = rp.MarkSafety(a.udid, v, why)
	}
	if err != nil {
		// The backup is there; only its label is missing.
		a.log.Warn().Err(err).Msg("mark the safety backup")
	}
	return "safety backup " + id + " taken first", nil
}

// pinCause classifies a backup that could not be pinned after the
// safety backup.
func pinCause(err error) error {
	switch {
	case errors.Is(err, repo.ErrNoSuchVersion):
		return cause.New(cause.BackupIncomplete, fmt.Errorf("the backup to restore is no longer kept (retention removed it): %w", err))
	case errors.Is(err, repo.ErrBusy):
		return cause.New(cause.DeviceBusy, err)
	}
	return err
}

// restoreRefused records a restore that ended before the engine ran,
// with its cause, and shows it.
func (a *actor) restoreRefused(ctx context.Context, run store.Run, err error, note string) attemptResult {
	d := a.d
	if c := context.Cause(ctx); c != nil && ctx.Err() != nil {
		err = cutShort(err, c)
	}
	run.Start = d.now()
	stored, berr := d.beginRun(run)
	if berr != nil {
		a.log.Error().Err(berr).Msg("record a restore")
		stored = run
	}
	stored.End, stored.Outcome, stored.Note = d.now(), store.OutcomeFailed, note
	stored.SetError(err)
	if ctx.Err() != nil && !errors.Is(context.Cause(ctx), errDetached) {
		stored.Outcome, stored.Cause = store.OutcomeInterrupted, cause.Interrupted
	}
	if berr == nil {
		stored, _ = d.finishRun(stored)
	}
	a.log.Warn().Err(err).Str("cause", string(stored.Cause)).Msg("restore not started")
	a.setState(api.StateFailed, stored.Cause, note, time.Time{})
	return attemptResult{kind: resRestored, cause: stored.Cause}
}

// runRestore records the restore's run, runs the engine under the stall
// watchdog with progress, and records and shows how it ended.
func (a *actor) runRestore(ctx context.Context, req attemptReq, rp *repo.Repo, run store.Run) {
	d := a.d
	rr := req.restore
	select {
	case a.mb2 <- struct{}{}:
	case <-ctx.Done():
		a.restoreRefused(ctx, run, context.Cause(ctx), "")
		return
	}
	defer func() { <-a.mb2 }()
	start := d.now()
	run.Start = start
	stored, err := d.beginRun(run)
	if err != nil {
		a.log.Error().Err(err).Msg("record the start of a restore")
		a.setState(api.StateFailed, cause.Of(err), "the history could not be written: "+err.Error(), time.Time{})
		return
	}
	a.log.Info().Uint64("run", uint64(stored.ID)).Str("source", rr.source).Str("version", rr.name).Msg("restore started")
	a.setState(api.StateRestoring, cause.None, "", time.Time{})
	a.setProgress(&api.Progress{Started: start})

	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	wd := newWatchdog(d.cfg.Backup.StallTimeout.D(), func() { cancel(errStalled) })
	prog := progressReporter{a: a, started: start, state: api.StateRestoring}
	res, rerr := d.eng.(restorer).Restore(wctx, req.dev, backup.RestoreTarget{
		Source:  backup.FromPin(rp, rr.pin),
		Options: rr.opts,
		Progress: func(p backup.Progress) {
			wd.kick(p)
			prog.report(p)
		},
		AwaitingPasscode: a.restorePasscode,
	})
	wd.stop()
	prog.stop()
	why := context.Cause(wctx)
	a.setProgress(nil)

	stored.End, stored.Bytes, stored.Files = d.now(), res.Bytes, res.Files
	restoreOutcome(&stored, res, rerr, why)
	final, _ := d.finishRun(stored)
	ev := a.log.Info()
	if final.Outcome != store.OutcomeSuccess {
		ev = a.log.Warn().Err(rerr)
	}
	ev.Uint64("run", uint64(final.ID)).Str("outcome", string(final.Outcome)).Str("cause", string(final.Cause)).
		Int64("bytes", final.Bytes).Int64("files", final.Files).Dur("took", final.End.Sub(start)).Msg("restore ended")
	if final.Outcome == store.OutcomeSuccess {
		a.setState(api.StateRestored, cause.None, final.Note, time.Time{})
		return
	}
	a.setState(api.StateFailed, final.Cause, final.Note, time.Time{})
}

// restoreOutcome fills in how a restore run ended, as outcome does for
// a backup; a restore cut short says in its note what state the phone
// may be in.
func restoreOutcome(run *store.Run, res backup.RestoreResult, rerr, why error) {
	switch {
	case rerr == nil:
		run.Outcome = store.OutcomeSuccess
		run.Note = joinNote(run.Note, restoredNote(res))
		return
	case errors.Is(why, errDetached), errors.Is(why, errStalled):
		run.Outcome = store.OutcomeFailed
		run.SetError(cutShort(rerr, why))
	case why != nil:
		run.Outcome = store.OutcomeInterrupted
		run.SetError(rerr)
		run.Cause = cause.Interrupted
	default:
		run.Outcome = store.OutcomeFailed
		run.SetError(rerr)
	}
	switch run.Cause {
	case cause.Disconnected, cause.Stalled, cause.Interrupted:
		run.Note = joinNote(run.Note, cutNote(res))
	}
}

// restoredNote says what a successful restore did.
func restoredNote(res backup.RestoreResult) string {
	if res.AppsPlist {
		return "the iPhone restarts and then reinstalls the backup's apps"
	}
	return "restored"
}

// cutNote says what state a phone is in after a restore broke off.
func cutNote(res backup.RestoreResult) string {
	if res.Files == 0 && res.Bytes == 0 {
		return "the restore stopped before the iPhone received any of the backup, so nothing on it changed; restore again"
	}
	return fmt.Sprintf("the restore stopped after %d files: the iPhone may hold part of the backup and may restart by itself; "+
		"the backup on this computer is untouched: plug the iPhone in, unlock it and restore again", res.Files)
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// restorePasscode shows that the iPhone waits for its passcode before
// the restore starts, and back to restoring when the prompt goes.
func (a *actor) restorePasscode(showing bool) {
	if showing {
		name := a.snapshotName()
		if name == "" {
			name = "the iPhone"
		}
		a.setState(api.StateAwaitingPasscode, cause.None, "enter your passcode on "+name+" to start the restore", time.Time{})
		return
	}
	if a.snapshot().state == api.StateAwaitingPasscode {
		a.setState(api.StateRestoring, cause.None, "", time.Time{})
	}
}
