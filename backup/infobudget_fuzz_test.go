package backup

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/backupd/backupd/proto/wire"
)

// browseScript frames installation_proxy replies as a device sends them.
func browseScript(f *testing.F, replies ...map[string]any) []byte {
	var buf bytes.Buffer
	for _, r := range replies {
		if err := wire.WritePlist(&buf, r, wire.XML); err != nil {
			f.Fatal(err)
		}
	}
	return buf.Bytes()
}

// FuzzBrowseApps: whatever installation_proxy answers, browseApps never
// panics, keeps no more apps than maxApps, and keeps records only within
// their share of the Info.plist budget.
func FuzzBrowseApps(f *testing.F) {
	rec := make([]byte, 300)
	page := func(n int) map[string]any {
		var list []any
		for i := range n {
			list = append(list, map[string]any{"CFBundleIdentifier": "com.example." + string(rune('a'+i)), "ApplicationSINF": rec, "iTunesMetadata": rec})
		}
		return map[string]any{"Status": "BrowsingApplications", "CurrentList": list}
	}
	f.Add(browseScript(f, page(3), map[string]any{"Status": "Complete"}))
	f.Add(browseScript(f, page(20), page(20), map[string]any{"Status": "Complete"}))
	f.Add(browseScript(f, map[string]any{"Error": "APIInternalError"}))
	f.Add([]byte{0, 0, 0, 4, 'x', 'x', 'x', 'x'})
	const budget = 4 << 10
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b := newInfoBudget(budget)
		svc := plistService{conn: &scriptConn{r: bytes.NewReader(data)}, timeout: time.Second, format: wire.XML}
		apps, _ := browseApps(ctx, svc, b)
		if len(apps) > maxApps {
			t.Fatalf("%d apps kept, over %d", len(apps), maxApps)
		}
		var kept int64
		for _, a := range apps {
			if a.sinf != nil && a.meta != nil {
				kept += plistSize(a.sinf) + plistSize(a.meta)
			}
		}
		if kept > budget/2 {
			t.Fatalf("%d bytes of records kept, over their %d", kept, budget/2)
		}
	})
}
