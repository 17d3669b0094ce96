package daemon

import (
	"testing"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// TestActorsRetire: each UDID a device presents gets a worker, and a
// worker whose phone is gone and that has nothing to do ends after
// Options.ActorIdle, so the workers do not grow with every UDID ever seen
// (issue #16). A phone that comes back gets a new one and is served.
func TestActorsRetire(t *testing.T) {
	const n = 6
	cfgs := make([]sim.DeviceConfig, n)
	for i := range cfgs {
		cfgs[i] = sim.DeviceConfig{Files: sim.FileSpec{Count: 5}}
	}
	s, devs := simtest.StartT(t, cfgs...)
	cfg := testConfig(t, s)
	cfg.Policy.MaxConcurrent = n
	r := start(t, cfg, Options{ActorIdle: 300 * time.Millisecond})
	for _, dev := range devs {
		waitRuns(t, r.c, dev.UDID(), 1, 60*time.Second)
	}
	if got := actorCount(r.d); got != n {
		t.Fatalf("%d workers for %d connected phones", got, n)
	}
	for _, dev := range devs {
		dev.Unplug()
	}
	waitFor(t, 10*time.Second, "the workers of the phones that are gone to end", func() bool { return actorCount(r.d) == 0 })
	// The history still knows them.
	if d, err := r.c.Device(ctxT(t), devs[0].UDID()); err != nil || d.LastSuccess.IsZero() || d.Connected {
		t.Errorf("a phone whose worker ended: %+v, %v", d, err)
	}
	devs[0].Plug()
	waitState(t, r.c, devs[0].UDID(), 10*time.Second, api.StateUpToDate)
	if got := actorCount(r.d); got != 1 {
		t.Errorf("%d workers after one phone came back", got)
	}
}

func actorCount(d *Daemon) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.actors)
}
