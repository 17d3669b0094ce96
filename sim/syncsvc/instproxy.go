package syncsvc

import (
	"context"
	"crypto/sha1"
	"fmt"
	"net"
	"strings"

	"github.com/backupd/backupd/proto/wire"
)

// App is one installed application as installation_proxy describes it.
type App struct {
	BundleID     string // CFBundleIdentifier
	DisplayName  string // CFBundleDisplayName and CFBundleName
	Version      string // CFBundleVersion
	ShortVersion string // CFBundleShortVersionString; empty = Version
	// Type is ApplicationType: "User" (the default) or "System".
	Type string
	// SINF is ApplicationSINF, the App Store DRM blob. A backup tool keeps
	// the app in Info.plist's Applications only when both it and
	// ITunesMetadata are present.
	SINF []byte
	// ITunesMetadata is the app's iTunesMetadata.plist, as bytes.
	ITunesMetadata []byte
}

func (a App) appType() string {
	if a.Type == "" {
		return "User"
	}
	return a.Type
}

// attributes is the full attribute dictionary of a, before
// ReturnAttributes filtering.
func (a App) attributes() map[string]any {
	short := a.ShortVersion
	if short == "" {
		short = a.Version
	}
	name := a.DisplayName
	if name == "" {
		name = a.BundleID
	}
	m := map[string]any{
		"CFBundleIdentifier":         a.BundleID,
		"CFBundleDisplayName":        name,
		"CFBundleName":               name,
		"CFBundleExecutable":         strings.ReplaceAll(name, " ", ""),
		"CFBundleVersion":            a.Version,
		"CFBundleShortVersionString": short,
		"ApplicationType":            a.appType(),
		"Path":                       "/private/var/containers/Bundle/Application/" + fakeUUID(a.BundleID) + "/" + strings.ReplaceAll(name, " ", "") + ".app",
		"Container":                  "/private/var/mobile/Containers/Data/Application/" + fakeUUID("data:"+a.BundleID),
	}
	if a.SINF != nil {
		m["ApplicationSINF"] = a.SINF
	}
	if a.ITunesMetadata != nil {
		m["iTunesMetadata"] = a.ITunesMetadata
	}
	return m
}

// fakeUUID derives a stable, UUID-shaped name from s, so an app keeps its
// container path across runs.
func fakeUUID(s string) string {
	b := sha1.Sum([]byte(s))
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// DefaultApps returns a few synthetic App Store apps with every attribute
// a backup reads.
func DefaultApps() []App {
	mk := func(id, name, version string, itemID int) App {
		meta, err := wire.Encode(map[string]any{
			"itemName":                 name,
			"itemId":                   itemID,
			"softwareVersionBundleId":  id,
			"bundleShortVersionString": version,
			"artistName":               "Simulated Developer",
			"kind":                     "software",
		}, wire.Binary)
		if err != nil {
			panic(err) // fixed values: cannot fail
		}
		return App{
			BundleID: id, DisplayName: name, Version: version,
			SINF:           []byte("sinf:" + id),
			ITunesMetadata: meta,
		}
	}
	return []App{
		mk("com.example.notes", "Notes Plus", "2.4.1", 100000001),
		mk("com.example.photos", "Photo Lab", "7.0", 100000002),
		mk("com.example.weather", "Weather Now", "1.12", 100000003),
	}
}

// InstProxyConfig configures one installation_proxy connection.
type InstProxyConfig struct {
	// Apps are the installed apps, in the order Browse lists them.
	Apps []App
	// PageSize is how many apps one Browse status carries; 0 means 20.
	PageSize int
}

// ServeInstallationProxy serves com.apple.mobile.installation_proxy on
// conn: Browse, answered with pages {Status: BrowsingApplications,
// CurrentList, CurrentIndex, CurrentAmount, Total} and then {Status:
// Complete}, and Lookup, answered with {LookupResult, Status: Complete}.
// ClientOptions' ApplicationType, BundleIDs and ReturnAttributes filter the
// answer as on a device. Other commands get an Error status.
func ServeInstallationProxy(ctx context.Context, conn net.Conn, cfg InstProxyConfig) error {
	const service = "installation_proxy"
	defer own(ctx, conn)()
	page := cfg.PageSize
	if page <= 0 {
		page = 20
	}
	for {
		req, err := readDict(conn)
		if err != nil {
			return ended(ctx, service, err)
		}
		cmd, _ := str(req, "Command")
		opts, _ := req["ClientOptions"].(map[string]any)
		var replies []map[string]any
		switch cmd {
		case "Browse":
			replies = browse(cfg.Apps, opts, page)
		case "Lookup":
			found := map[string]any{}
			for _, a := range selectApps(cfg.Apps, opts) {
				found[a.BundleID] = filterAttributes(a.attributes(), opts)
			}
			replies = []map[string]any{{"LookupResult": found, "Status": "Complete"}}
		case "":
			return ended(ctx, service, fmt.Errorf("request without a Command: %w", ErrMalformed))
		default:
			replies = []map[string]any{{
				"Error":            "UnknownCommand",
				"ErrorDescription": fmt.Sprintf("command %q is not supported by the simulator", cmd),
				"Status":           "Complete",
			}}
		}
		for _, r := range replies {
			if err := wire.WritePlist(conn, r, wire.XML); err != nil {
				return ended(ctx, service, err)
			}
		}
	}
}

func browse(apps []App, opts map[string]any, page int) []map[string]any {
	sel := selectApps(apps, opts)
	var out []map[string]any
	for i := 0; i < len(sel); i += page {
		end := min(i+page, len(sel))
		list := make([]any, 0, end-i)
		for _, a := range sel[i:end] {
			list = append(list, filterAttributes(a.attributes(), opts))
		}
		// libimobiledevice indexes CurrentList up to CurrentAmount, so the
		// two must agree.
		out = append(out, map[string]any{
			"Status":        "BrowsingApplications",
			"CurrentList":   list,
			"CurrentIndex":  uint64(i),
			"CurrentAmount": uint64(len(list)),
			"Total":         uint64(len(sel)),
		})
	}
	return append(out, map[string]any{"Status": "Complete"})
}

// selectApps applies ApplicationType (User, System, Any; absent = Any) and
// BundleIDs.
func selectApps(apps []App, opts map[string]any) []App {
	typ, _ := str(opts, "ApplicationType")
	var ids map[string]bool
	if list, ok := opts["BundleIDs"].([]any); ok {
		ids = map[string]bool{}
		for _, v := range list {
			if s, ok := v.(string); ok {
				ids[s] = true
			}
		}
	}
	var out []App
	for _, a := range apps {
		if typ != "" && typ != "Any" && a.appType() != typ {
			continue
		}
		if ids != nil && !ids[a.BundleID] {
			continue
		}
		out = append(out, a)
	}
	return out
}

// filterAttributes keeps only ReturnAttributes, when the host gave them.
func filterAttributes(attrs map[string]any, opts map[string]any) map[string]any {
	want, ok := opts["ReturnAttributes"].([]any)
	if !ok {
		return attrs
	}
	out := map[string]any{}
	for _, v := range want {
		if k, ok := v.(string); ok {
			if val, ok := attrs[k]; ok {
				out[k] = val
			}
		}
	}
	return out
}
