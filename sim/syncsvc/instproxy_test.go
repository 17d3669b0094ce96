package syncsvc

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net"
	"testing"

	"github.com/backupd/backupd/proto/wire"
)

func serveIP(cfg InstProxyConfig) func(context.Context, net.Conn) error {
	return func(ctx context.Context, c net.Conn) error { return ServeInstallationProxy(ctx, c, cfg) }
}

func manyApps(n int) []App {
	apps := make([]App, n)
	for i := range apps {
		apps[i] = App{BundleID: fmt.Sprintf("com.example.app%d", i), Version: "1", SINF: []byte{1}, ITunesMetadata: []byte{2}}
	}
	return apps
}

// browseOpts are the options idevicebackup2 sends.
var browseOpts = map[string]any{
	"ApplicationType":  "User",
	"ReturnAttributes": []any{"CFBundleIdentifier", "ApplicationSINF", "iTunesMetadata"},
}

func TestBrowsePaging(t *testing.T) {
	tests := []struct {
		name      string
		apps      []App
		pageSize  int
		wantPages []int // CurrentAmount of each BrowsingApplications status
	}{
		{name: "no apps", apps: nil, wantPages: nil},
		{name: "default apps, one page", apps: DefaultApps(), wantPages: []int{3}},
		{name: "exact pages", apps: manyApps(6), pageSize: 3, wantPages: []int{3, 3}},
		{name: "short last page", apps: manyApps(7), pageSize: 3, wantPages: []int{3, 3, 1}},
		{name: "system apps left out", apps: append(manyApps(2), App{BundleID: "com.apple.mobilesafari", Type: "System"}), wantPages: []int{2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, errc := serve(t, testCtx(t), serveIP(InstProxyConfig{Apps: tc.apps, PageSize: tc.pageSize}))
			send(t, c, map[string]any{"Command": "Browse", "ClientOptions": browseOpts}, wire.XML)
			var pages []int
			var ids []string
			for {
				m := recv(t, c)
				if m["Status"] == "Complete" {
					break
				}
				if m["Status"] != "BrowsingApplications" {
					t.Fatalf("status %v", m["Status"])
				}
				list, _ := m["CurrentList"].([]any)
				if amount, _ := m["CurrentAmount"].(uint64); int(amount) != len(list) {
					t.Fatalf("CurrentAmount %v for a list of %d", m["CurrentAmount"], len(list))
				}
				if idx, _ := m["CurrentIndex"].(uint64); int(idx) != len(ids) {
					t.Fatalf("CurrentIndex %v after %d apps", m["CurrentIndex"], len(ids))
				}
				if total, _ := m["Total"].(uint64); int(total) != sumInts(tc.wantPages) {
					t.Fatalf("Total %v, want %d", m["Total"], sumInts(tc.wantPages))
				}
				for _, e := range list {
					app := e.(map[string]any)
					if len(app) != 3 {
						t.Fatalf("ReturnAttributes ignored: %v", app)
					}
					if _, ok := app["ApplicationSINF"].([]byte); !ok {
						t.Fatalf("ApplicationSINF is %T, want data", app["ApplicationSINF"])
					}
					if _, ok := app["iTunesMetadata"].([]byte); !ok {
						t.Fatalf("iTunesMetadata is %T, want data", app["iTunesMetadata"])
					}
					ids = append(ids, app["CFBundleIdentifier"].(string))
				}
				pages = append(pages, len(list))
			}
			if fmt.Sprint(pages) != fmt.Sprint(tc.wantPages) {
				t.Fatalf("pages %v, want %v", pages, tc.wantPages)
			}
			for i, id := range ids {
				if id != tc.apps[i].BundleID {
					t.Fatalf("app %d is %s, want %s", i, id, tc.apps[i].BundleID)
				}
			}
			c.Close()
			if err := served(t, errc); err != nil {
				t.Fatalf("Serve = %v", err)
			}
		})
	}
}

func sumInts(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

func TestInstProxyLookupAndErrors(t *testing.T) {
	c, _ := serve(t, testCtx(t), serveIP(InstProxyConfig{Apps: DefaultApps()}))
	send(t, c, map[string]any{"Command": "Lookup", "ClientOptions": map[string]any{
		"BundleIDs": []any{"com.example.photos"},
	}}, wire.XML)
	m := recv(t, c)
	res, _ := m["LookupResult"].(map[string]any)
	app, _ := res["com.example.photos"].(map[string]any)
	if m["Status"] != "Complete" || len(res) != 1 || app["CFBundleDisplayName"] != "Photo Lab" {
		t.Fatalf("Lookup answered %v", m)
	}
	// The metadata a backup copies into Info.plist is a real plist.
	var meta map[string]any
	if err := wire.Decode(app["iTunesMetadata"].([]byte), &meta); err != nil || meta["itemName"] != "Photo Lab" {
		t.Fatalf("iTunesMetadata = %v, %v", meta, err)
	}
	send(t, c, map[string]any{"Command": "Install"}, wire.XML)
	if m := recv(t, c); m["Error"] == nil || m["Status"] != "Complete" {
		t.Fatalf("unsupported command answered %v", m)
	}
	// The connection is still usable.
	send(t, c, map[string]any{"Command": "Browse"}, wire.XML)
	if m := recv(t, c); m["Status"] != "BrowsingApplications" {
		t.Fatalf("Browse after an error answered %v", m)
	}
}

func serveSB(cfg SpringboardConfig) func(context.Context, net.Conn) error {
	return func(ctx context.Context, c net.Conn) error { return ServeSpringboard(ctx, c, cfg) }
}

func TestSpringboardIcons(t *testing.T) {
	custom := PlaceholderIcon("custom")
	c, errc := serve(t, testCtx(t), serveSB(SpringboardConfig{Icons: map[string][]byte{"com.example.custom": custom}}))
	tests := []struct {
		bundleID string
		want     []byte
	}{
		{"com.example.notes", PlaceholderIcon("com.example.notes")},
		{"com.example.custom", custom},
	}
	for _, tc := range tests {
		// sbservices sends binary plists.
		send(t, c, map[string]any{"command": "getIconPNGData", "bundleId": tc.bundleID}, wire.Binary)
		data, ok := recv(t, c)["pngData"].([]byte)
		if !ok || !bytes.Equal(data, tc.want) {
			t.Fatalf("%s: pngData %d bytes, want %d", tc.bundleID, len(data), len(tc.want))
		}
		if _, err := png.Decode(bytes.NewReader(data)); err != nil {
			t.Fatalf("%s: icon is not a PNG: %v", tc.bundleID, err)
		}
	}
	if bytes.Equal(PlaceholderIcon("a"), PlaceholderIcon("b")) {
		t.Fatal("placeholder icons do not differ between apps")
	}
	// setIconState has no answer; the next request's answer comes next.
	send(t, c, map[string]any{"command": "setIconState", "iconState": []any{}}, wire.Binary)
	send(t, c, map[string]any{"command": "getInterfaceOrientation"}, wire.Binary)
	if m := recv(t, c); m["interfaceOrientation"] != uint64(1) {
		t.Fatalf("orientation answer %v", m)
	}
	send(t, c, map[string]any{"bundleId": "x"}, wire.Binary)
	if err := served(t, errc); err == nil {
		t.Fatal("request without a command was accepted")
	}
}
