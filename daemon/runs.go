package daemon

import (
	"errors"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/offline"
	"github.com/backupd/backupd/store"
)

// This file writes the run records: a backup's start and end, a skip,
// and the retention that follows. Each record written is published.

// beginRun records that a backup starts.
func (d *Daemon) beginRun(r store.Run) (store.Run, error) {
	stored, err := d.store.BeginRun(r)
	if err != nil {
		return r, err
	}
	d.mu.Lock()
	d.open[stored.ID] = stored
	d.mu.Unlock()
	d.publishRun(stored)
	return stored, nil
}

// finishInterrupted records an open run as interrupted.
func (d *Daemon) finishInterrupted(r store.Run, note string) {
	r.Outcome, r.End, r.Note = store.OutcomeInterrupted, d.now(), note
	r.SetError(cause.New(cause.Interrupted, nil))
	d.finishRun(r)
}

// finishRun writes a run's end and publishes it.
func (d *Daemon) finishRun(r store.Run) (store.Run, error) {
	d.mu.Lock()
	delete(d.open, r.ID)
	d.mu.Unlock()
	stored, err := d.store.FinishRun(r)
	if err != nil {
		if !errors.Is(err, store.ErrNotRunning) {
			d.log.Error().Err(err).Str("udid", r.UDID).Uint64("run", uint64(r.ID)).Msg("record the end of a run")
		}
		return r, err
	}
	d.ended(stored)
	return stored, nil
}

// recordSkip records a run decided against.
func (d *Daemon) recordSkip(r store.Run) {
	stored, err := d.store.RecordSkip(r)
	if err != nil {
		d.log.Error().Err(err).Str("udid", r.UDID).Msg("record a skipped backup")
		return
	}
	d.ended(stored)
}

// ended publishes a run's end and applies the history's retention to its
// device.
func (d *Daemon) ended(r store.Run) {
	d.publishRun(r)
	if err := d.pruneDevice(r.UDID); err != nil {
		d.log.Warn().Err(err).Str("udid", r.UDID).Msg("prune history")
	}
}

// publishRun tells the event stream of a run as the history now holds
// it: its start, or its end however it came (a backup finished or cut
// short, a skip, a run start-up recovery ended). The hooks and the
// metrics hear of runs only from here.
func (d *Daemon) publishRun(r store.Run) {
	d.bus.publish(api.Event{
		Type: api.EventRun, UDID: r.UDID, Name: r.DeviceName,
		Cause: r.Cause, Summary: summary(r.Cause), Note: r.Note, Run: offline.RunView(r),
	})
}

func (d *Daemon) retention() store.Retention {
	return store.Retention{MaxRuns: d.cfg.History.KeepRuns, MaxAge: d.cfg.History.KeepFor.D()}
}

func (d *Daemon) pruneDevice(udid string) error {
	ret := d.retention()
	if ret == (store.Retention{}) {
		return nil
	}
	_, err := d.store.PruneDevice(udid, d.now(), ret)
	return err
}

// summary is the plain sentence for a cause, or nothing for none.
func summary(c cause.Code) string {
	if c == cause.None {
		return ""
	}
	return cause.Lookup(c).Summary
}
