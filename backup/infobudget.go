package backup

import (
	"context"
	"log/slog"
)

// Info.plist is built in memory from what the phone's helper services
// say: up to maxApps apps, each with its App Store records and an icon of
// up to 16 MiB, and the iTunes files. Without a total a phone
// could make the daemon hold gigabytes, and a daemon killed for it is
// restarted into the same phone. The budget bounds the total; what does
// not fit is left out of Info.plist (a backup restores without it) and
// the log says what.

// maxIconMessage bounds one springboardservices reply: an app icon is a
// PNG of some tens of KiB. A larger reply ends the icons; reading it
// whole would cost twice its size for an icon the budget may drop.
const maxIconMessage = 2 << 20

// maxInfoData bounds the app records, icons and iTunes files Info.plist
// holds. Written as XML (base64), Info.plist is about 4/3 of it, under
// the 64 MiB a verify reads. A real iPhone's is a few MiB.
const maxInfoData = 24 << 20

// infoBudget is what is left of maxInfoData, and what was left out.
type infoBudget struct {
	left int64
	// recordsLeft keeps half of the budget from the apps' records,
	// which come first, so that icons and iTunes files get some.
	recordsLeft          int64
	records, icons, misc int // left out: apps' records, icons, iTunes files
}

func newInfoBudget(n int64) *infoBudget { return &infoBudget{left: n, recordsLeft: n / 2} }

// takeRecord charges an app's records, within their share.
func (b *infoBudget) takeRecord(n int64) bool {
	if n > b.recordsLeft || !b.take(n) {
		return false
	}
	b.recordsLeft -= n
	return true
}

// take charges n bytes and reports whether they fit.
func (b *infoBudget) take(n int64) bool {
	if n > b.left {
		return false
	}
	b.left -= n
	return true
}

// report logs what was left out, if anything.
func (b *infoBudget) report(log *slog.Logger) {
	if b.records+b.icons+b.misc == 0 {
		return
	}
	log.Warn("Info.plist is over its budget: left out what did not fit",
		"budget_bytes", maxInfoData, "app_records", b.records, "app_icons", b.icons, "itunes_files", b.misc)
}

// plistSize estimates the memory a decoded plist value holds.
func plistSize(v any) int64 {
	switch v := v.(type) {
	case []byte:
		return int64(len(v))
	case string:
		return int64(len(v))
	case []any:
		n := int64(16)
		for _, e := range v {
			n += plistSize(e)
		}
		return n
	case map[string]any:
		n := int64(16)
		for k, e := range v {
			n += int64(len(k)) + plistSize(e)
		}
		return n
	}
	return 16
}

// fetchIcons asks springboardservices for the icon of each app whose
// records Info.plist keeps, while the budget lasts: once an icon does not
// fit, the rest are not asked for (each may be 16 MiB).
func fetchIcons(ctx context.Context, svc plistService, apps []app, b *infoBudget, log *slog.Logger) {
	full := false
	for i := range apps {
		if apps[i].sinf == nil || apps[i].meta == nil {
			continue
		}
		if full {
			b.icons++
			continue
		}
		icon, err := iconPNG(ctx, svc, apps[i].bundleID)
		if err != nil {
			log.Warn("springboardservices icon", "app", apps[i].bundleID, "err", err)
			return
		}
		if !b.take(int64(len(icon))) {
			full = true
			b.icons++
			continue
		}
		apps[i].icon = icon
	}
}

// keepFile charges a file copied into Info.plist; nil when it does not
// fit.
func (b *infoBudget) keepFile(data []byte) []byte {
	if data == nil || b.take(int64(len(data))) {
		return data
	}
	b.misc++
	return nil
}
