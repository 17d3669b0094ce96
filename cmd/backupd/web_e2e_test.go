package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/sim/simtest"
)

// screenshotsEnv names the folder the browser test saves its screenshots
// in; `make screenshots` points it at docs/screenshots for the README.
const screenshotsEnv = "BACKUPD_SCREENSHOTS"

// TestE2EWebPage drives Debian's chromium, headless, against `backupd
// run` and the simulator: the plugged-in phone appears without a reload,
// the progress bar advances during a slow backup, "Back up now" adds a
// run to the phone's table, and a cable pulled mid-backup shows
// `disconnected` with its fix.
func TestE2EWebPage(t *testing.T) {
	chrome := simtest.RequireTool(t, "chromium")
	e := configEnv(t, "")
	addr := freePort(t)
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[web]\nlisten = %q\n", addr)
	f.Close()
	// One phone, unplugged for now, with about 15 MB in 6,000 files: the
	// simulator sends at most 5,000 files a round and reports its
	// percentage per round, so the bar stops at 2%, 75% and 90%.
	startSim(t, e.bin, e.mux, "--devices", "1", "--unplugged", "--files", "6000", "--min-size", "2048", "--max-size", "3072")
	line, _, _ := strings.Cut(strings.TrimSpace(e.ctl(t, "list")), "\n")
	udid, _, _ := strings.Cut(line, "\t")
	start(t, filepath.Join(e.bin, "backupd"), "run", "--config", e.config)
	_, port, _ := net.SplitHostPort(addr)
	base := "http://localhost:" + port
	waitFor(t, "the web page", func() bool {
		resp, err := http.Get(base + "/static/app.js")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})

	shots := os.Getenv(screenshotsEnv)
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	b := newBrowser(t, chrome)
	lap := func(what string) { t.Logf("%6s  %s", time.Since(began).Round(100*time.Millisecond), what) }
	lap("chromium started")

	// The overview, before the phone is plugged in, in a window the size
	// of the README's screenshot.
	b.do(chromedp.EmulateViewport(960, 520))
	b.do(chromedp.Navigate(base + "/"))
	b.wait("the empty overview", `document.querySelector('.empty') !== null && document.getElementById('live-status').textContent === 'Live'`)
	b.do(chromedp.Evaluate[chromedp.Void](`window.noReload = true`))

	// Plugged in over a slow link: the card appears and its bar moves.
	e.ctl(t, "fault", udid, "slow-link=3000000")
	e.ctl(t, "plug", udid)
	card := "document.getElementById('card-" + udid + "')"
	b.wait("the phone's card", card+" !== null")
	b.wait("a progress bar", card+".querySelector('progress') !== null")
	var seen []float64
	shot := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		v := b.eval(`(() => { const p = ` + card + `.querySelector('progress'); return p === null ? -1 : p.value; })()`)
		if v < 0 {
			break
		}
		if len(seen) == 0 || v != seen[len(seen)-1] {
			seen = append(seen, v)
		}
		if !shot && v >= 30 && v <= 80 && b.bool(card+".querySelector('.eta').textContent !== ''") {
			b.screenshot(filepath.Join(shots, "overview.png"))
			shot = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(seen) < 3 || seen[len(seen)-1] <= seen[0] {
		t.Errorf("the progress bar went %v; want it to advance", seen)
	}
	if !shot {
		t.Errorf("no screenshot: the bar went %v, without a time left between 30%% and 80%%", seen)
	}
	b.wait("the success", card+".querySelector('.state-text').textContent === 'Backed up'")
	if !b.bool(`window.noReload === true`) {
		t.Error("the overview reloaded; it should have changed in place")
	}

	lap("the plug-in backup, followed on the overview")
	e.ctl(t, "fault", udid, "clear") // full speed until the cable is pulled

	// The phone's page: "Back up now" adds a run to the table.
	b.do(chromedp.EmulateViewport(1100, 900))
	b.do(chromedp.Navigate(base + "/phone/" + udid))
	b.wait("the phone's page", `document.querySelectorAll('tr.run-row').length === 1`)
	b.do(chromedp.Click(chromedp.CSS(`form[action$="/backup"] button`)))
	b.wait("the manual run in the table", `document.querySelectorAll('tr.run-row').length === 2 && document.querySelector('.flash') !== null`)
	b.wait("the manual run's success", `document.querySelector('tr.run-row td:nth-child(3)').textContent.startsWith('manual') && document.querySelector('tr.run-row .outcome').textContent === 'success'`)

	// A cable pulled mid-backup: disconnected, with its fix, live.
	lap("Back up now, and its run in the table")
	// The cable comes out mid-transfer, on a slow link so the page shows
	// the backup under way first: the simulator pulls it after 1,000 of
	// the 3,000 files that changed.
	e.ctl(t, "mutate", udid, "0.5")
	e.ctl(t, "fault", udid, "slow-link=2000000", "unplug-after-files=1000")
	b.do(chromedp.Click(chromedp.CSS(`form[action$="/backup"] button`)))
	b.wait("the backup under way", card+" !== null && "+card+".querySelector('.state-text').textContent === 'Backing up now'")
	b.do(chromedp.Evaluate[chromedp.Void](`window.noReload = true`))
	fix := cause.Lookup(cause.Disconnected).Fix
	b.wait("disconnected with its fix", card+` !== null && `+card+`.querySelector('.problem .cause') !== null && `+
		card+`.querySelector('.problem .cause').textContent === 'disconnected' && `+
		card+`.querySelector('.problem .fix').textContent.includes(`+jsString(fix)+`)`)
	b.wait("the failed run in the table", `document.querySelector('tr.run-row .outcome').textContent === 'failed' && document.querySelector('tr.run-row code.cause').textContent === 'disconnected'`)
	if !b.bool(`window.noReload === true`) {
		t.Error("the phone's page reloaded; it should have changed in place")
	}
	if n := int(b.eval(`document.querySelectorAll('svg rect.run').length`)); n != 3 {
		t.Errorf("the timeline has %d marks, want 3", n)
	}
	lap("the cable pulled, disconnected shown")
	// Drawn again, the page has doctor's checks, which wait while a
	// backup runs: the README's screenshot.
	b.do(chromedp.Navigate(base + "/phone/" + udid))
	b.wait("doctor's checks", `document.querySelector('.checks') !== null`)
	b.screenshot(filepath.Join(shots, "phone.png"))
	lap("doctor's checks")
	t.Logf("the bar went %v; screenshots in %s", seen, shots)
}

// browser is a headless chromium with a fresh profile and no network
// beyond this computer.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// The first action starts the browser, and the browser lives as long
	// as that action's context: so ctx, not one with a deadline.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1100, 900)); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browser) do(a chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, a); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) eval(expr string) float64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[float64](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func (b *browser) bool(expr string) bool {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript condition until it holds, for 30 s at most;
// on a timeout it shows what the page said.
func (b *browser) wait(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { try { return !!(`+cond+`); } catch (e) { return false; } })()`))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			cancel()
			b.t.Fatalf("timed out waiting for %s (%v); the page says:\n%s", what, err, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) screenshot(path string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}
