package hook

import "time"

// Backed is a device and when its latest successful backup ended.
type Backed struct {
	UDID, Name  string
	LastSuccess time.Time
}

// Overdue decides when a device is reported overdue: once per period of
// After without a successful backup. A device last backed up at T is
// reported when T+After passes, again at T+2·After, and so on, until a
// new success moves T. A device never backed up is not reported: its
// failures and skips have said why already, and nothing says how long
// it has been waiting. What was reported lives in memory only, so a
// device that is overdue when backupd starts is reported at start.
type Overdue struct {
	After time.Duration
	// sent maps a UDID to the period last reported: the last success it
	// counted from and how many periods had passed.
	sent map[string]period
}

type period struct {
	since time.Time
	n     int64
}

// Check returns the devices to report at now and when to check next:
// the earliest next period's end, zero when no device has a success to
// count from.
func (o *Overdue) Check(now time.Time, devs []Backed) (due []Backed, next time.Time) {
	if o.sent == nil {
		o.sent = map[string]period{}
	}
	if o.After <= 0 {
		return nil, time.Time{}
	}
	for _, d := range devs {
		if d.LastSuccess.IsZero() {
			continue
		}
		n := int64(now.Sub(d.LastSuccess) / o.After)
		if n >= 1 {
			p := period{since: d.LastSuccess, n: n}
			if last, ok := o.sent[d.UDID]; !ok || !last.since.Equal(p.since) || last.n != p.n {
				o.sent[d.UDID] = p
				due = append(due, d)
			}
		}
		end := d.LastSuccess.Add(time.Duration(max(n, 0)+1) * o.After)
		if next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return due, next
}
