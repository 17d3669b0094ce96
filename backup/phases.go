package backup

import (
	"log/slog"
	"time"
)

// phases times the steps of one backup in the debug log: one "backup
// phase" line per step, with how long it took and how long since the
// run began, so the fixed cost of a backup (from the request to the
// first file, and from the last file to the committed backup) can be
// read from any log.
type phases struct {
	log         *slog.Logger
	now         func() time.Time
	start, last time.Time
}

func newPhases(log *slog.Logger, now func() time.Time) *phases {
	t := now()
	return &phases{log: log, now: now, start: t, last: t}
}

// done ends the step called name.
func (p *phases) done(name string) {
	t := p.now()
	p.log.Debug("backup phase", "phase", name, "took_ms", msSince(p.last, t), "at_ms", msSince(p.start, t))
	p.last = t
}

func msSince(from, to time.Time) float64 {
	return float64(to.Sub(from).Microseconds()) / 1000
}
