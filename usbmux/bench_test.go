package usbmux

import (
	"slices"
	"testing"
	"time"

	"github.com/backupd/backupd/sim"
	"github.com/backupd/backupd/sim/simtest"
)

// BenchmarkAttachToFacts measures what the issue asks of the lockdown
// side: from the watcher's Attached event to Facts returned, against the
// simulator (settling is the stability tracker's business and is left
// out). It reports the mean, median and slowest latency in ms.
func BenchmarkAttachToFacts(b *testing.B) {
	s, devs := simtest.StartT(b, sim.DeviceConfig{Name: "Bench", BatteryLevel: 55})
	d := devs[0]
	d.Unplug()
	c := simClient(b, s)
	w := NewWatcher(WatcherConfig{Client: c})
	runWatcher(b, w)
	if ev := next(b, w); ev.Kind != MuxUp {
		b.Fatalf("%+v", ev)
	}
	var lat []time.Duration
	for b.Loop() {
		d.Plug()
		ev := expect(b, w, Attached, d.UDID(), false)
		f, err := c.Facts(testCtx(b), ev.Device)
		lat = append(lat, time.Since(ev.At))
		if err != nil || f.Name != "Bench" || f.BatteryLevel != 55 {
			b.Fatalf("facts %+v, %v", f, err)
		}
		d.Unplug()
		expect(b, w, Detached, d.UDID(), false)
	}
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(sum/time.Duration(len(lat))), "ms-mean")
	b.ReportMetric(ms(lat[len(lat)/2]), "ms-p50")
	b.ReportMetric(ms(lat[len(lat)-1]), "ms-max")
}
