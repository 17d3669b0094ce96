package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/backupd/backupd/daemon/api"
	"github.com/backupd/backupd/daemon/client"
	"golang.org/x/term"
)

// redrawEvery bounds how often the live status is redrawn: often enough
// for a moving bar, seldom enough not to load the daemon.
const redrawEvery = 250 * time.Millisecond

// underWay reports whether a device's backup has started and not ended.
func underWay(d api.Device) bool {
	switch d.State {
	case api.StateQueued, api.StateBackingUp, api.StateAwaitingPasscode, api.StateRestoring:
		return true
	}
	return false
}

func anyUnderWay(rep statusReport) bool {
	for _, d := range rep.Devices {
		if underWay(d.Device) {
			return true
		}
	}
	return false
}

// followStatus redraws the status in place on a terminal while a backup
// is under way, from the daemon's event stream, and returns once none is,
// leaving the final status on the screen. An interrupt (ctx) ends it
// early; the backups go on.
func followStatus(ctx context.Context, c *client.Client, cfg fileConfig, tty *os.File, first statusReport) error {
	stream, err := c.Events(ctx, "")
	if err != nil {
		return fmt.Errorf("follow the daemon's events: %w", err)
	}
	defer stream.Close()
	changed := make(chan struct{}, 1)
	lost := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Next(); err != nil {
				lost <- err
				return
			}
			select {
			case changed <- struct{}{}:
			default:
			}
		}
	}()

	scr := &liveScreen{w: tty, width: termWidth(tty)}
	scr.draw(liveLines(first, time.Now()))
	// A tick keeps ages and the ETA moving when no event comes.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-lost:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("lost the daemon's event stream: %w", err)
		case <-changed:
		case <-tick.C:
		}
		rep, err := gatherStatusFrom(context.WithoutCancel(ctx), c, cfg, time.Now())
		if err != nil {
			return err
		}
		scr.draw(liveLines(rep, time.Now()))
		if !rep.DaemonRunning || !anyUnderWay(rep) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(redrawEvery):
		}
	}
}

// liveLines is status's lines with the bar of a running backup on a line
// of its own under its device, where a narrow terminal still has room
// for it.
func liveLines(rep statusReport, now time.Time) []string {
	var bars []string
	for i := range rep.Devices {
		d := &rep.Devices[i]
		bar := ""
		if (d.State == api.StateBackingUp || d.State == api.StateRestoring) && d.Progress != nil {
			bar = "    " + progressBar(d.Progress) + thinkingNote(d.Progress, now)
			d.Progress = nil
		}
		bars = append(bars, bar)
	}
	lines := statusLines(rep, now)
	// statusLines ends with the devices' lines, in order.
	head := lines[:len(lines)-len(rep.Devices)]
	out := append([]string(nil), head...)
	for i, l := range lines[len(head):] {
		out = append(out, l)
		if bars[i] != "" {
			out = append(out, bars[i])
		}
	}
	return out
}

// liveScreen redraws a block of lines in place. Lines are cut to the
// terminal's width, since a wrapped line would throw off the count of
// lines to go back up.
type liveScreen struct {
	w     io.Writer
	width int
	drawn int
}

func (s *liveScreen) draw(lines []string) {
	if s.drawn > 0 {
		fmt.Fprintf(s.w, "\033[%dA", s.drawn)
	}
	for _, l := range lines {
		fmt.Fprintf(s.w, "\r\033[K%s\n", clip(l, s.width))
	}
	fmt.Fprint(s.w, "\033[J") // the rest of an older, longer block
	s.drawn = len(lines)
}

// termWidth is the terminal's width, or 80 when it cannot be told.
func termWidth(f *os.File) int {
	if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
		return w
	}
	return 80
}

// clip cuts s to width cells (runes; status lines have no wide
// characters but the ellipsis).
func clip(s string, width int) string {
	r := []rune(s)
	if width < 2 || len(r) < width {
		return s
	}
	return string(r[:width-2]) + "…"
}
