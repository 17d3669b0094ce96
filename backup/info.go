package backup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/backupd/backupd/cause"
	"github.com/backupd/backupd/proto/afc"
	"github.com/backupd/backupd/proto/devicestring"
	"github.com/backupd/backupd/proto/lockdown"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/usbmux"
)

// Bounds on what the helper services may make us hold.
const (
	maxServiceMessage = 16 << 20 // one installation_proxy page or icon
	maxApps           = 10000
	maxAFCFile        = 16 << 20 // one iTunes file copied into Info.plist
	defaultITunesVer  = "10.0.1" // what libimobiledevice writes when the device names none
)

// iTunesFiles are the files under /iTunes_Control/iTunes that a host
// copies into Info.plist's "iTunes Files", as libimobiledevice does.
var iTunesFiles = []string{
	"ApertureAlbumPrefs", "IC-Info.sidb", "IC-Info.sidv", "PhotosFolderAlbums",
	"PhotosFolderName", "PhotosFolderPrefs", "VoiceMemos.plist", "iPhotoAlbumPrefs",
	"iTunesApplicationIDs", "iTunesPrefs", "iTunesPrefs.plist",
}

// deviceValues are the lockdown values a backup records.
type deviceValues struct {
	root           map[string]any
	itunesSettings map[string]any
	minITunes      any
	willEncrypt    bool
}

// readValues reads, in a lockdown session, the whole root domain, the
// iTunes settings, the minimum iTunes version and WillEncrypt. Values the
// device does not have are left out, as libimobiledevice leaves them.
func readValues(ctx context.Context, l *usbmux.Lockdown) (deviceValues, error) {
	var v deviceValues
	root, err := l.GetValue(ctx, "", "")
	if err != nil {
		return v, fmt.Errorf("lockdown values: %w", err)
	}
	m, ok := root.(map[string]any)
	if !ok {
		return v, cause.Errorf(cause.ProtocolError, "lockdown root domain is a %T", root)
	}
	// The name is whatever the phone says: Info.plist gets it cleaned,
	// as every other place does (proto/devicestring).
	if name, ok := m["DeviceName"].(string); ok {
		m["DeviceName"] = devicestring.Clean(name)
	}
	v.root = m
	optional := func(domain, key string) (any, error) {
		val, err := l.GetValue(ctx, domain, key)
		if errors.Is(err, usbmux.ErrMissingValue) || errors.Is(err, usbmux.ErrGetProhibited) {
			return nil, nil
		}
		return val, err
	}
	if val, err := optional(lockdown.DomainITunes, ""); err != nil {
		return v, fmt.Errorf("lockdown values: %w", err)
	} else if d, ok := val.(map[string]any); ok {
		v.itunesSettings = d
	}
	if val, err := optional(lockdown.DomainMobileITunes, "MinITunesVersion"); err != nil {
		return v, fmt.Errorf("lockdown values: %w", err)
	} else {
		v.minITunes = val
	}
	if val, err := optional(lockdown.DomainBackup, "WillEncrypt"); err != nil {
		return v, fmt.Errorf("lockdown values: %w", err)
	} else {
		v.willEncrypt, _ = val.(bool)
	}
	return v, nil
}

// app is one installed user app as installation_proxy describes it.
type app struct {
	bundleID string
	sinf     any
	meta     any
	icon     []byte
}

// plistService is one connection to a plist-speaking lockdown service:
// 4-byte big-endian length and a plist per message.
type plistService struct {
	conn    net.Conn
	timeout time.Duration
	format  wire.Format
	// max bounds one reply; 0 means maxServiceMessage.
	max uint32
}

func (p plistService) exchange(ctx context.Context, req map[string]any, replies func(map[string]any) (bool, error)) error {
	dl := time.Now().Add(p.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = p.conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { p.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := wire.WritePlist(p.conn, req, p.format); err != nil {
		return err
	}
	for {
		var reply map[string]any
		limit := p.max
		if limit <= 0 {
			limit = maxServiceMessage
		}
		if err := wire.ReadPlist(p.conn, limit, &reply); err != nil {
			return err
		}
		more, err := replies(reply)
		if err != nil || !more {
			return err
		}
	}
}

// browseApps lists the user apps with the attributes a backup keeps.
// Records past the budget are left out (the app stays listed).
func browseApps(ctx context.Context, svc plistService, b *infoBudget) ([]app, error) {
	req := map[string]any{
		"Command": "Browse",
		"ClientOptions": map[string]any{
			"ApplicationType":  "User",
			"ReturnAttributes": []any{"CFBundleIdentifier", "ApplicationSINF", "iTunesMetadata"},
		},
	}
	var apps []app
	err := svc.exchange(ctx, req, func(r map[string]any) (bool, error) {
		if e, ok := r["Error"]; ok {
			return false, fmt.Errorf("installation_proxy Browse: %v %v", e, r["ErrorDescription"])
		}
		list, _ := r["CurrentList"].([]any)
		for _, it := range list {
			d, ok := it.(map[string]any)
			if !ok {
				continue
			}
			id, _ := d["CFBundleIdentifier"].(string)
			if id == "" {
				continue
			}
			if len(apps) >= maxApps {
				return false, fmt.Errorf("installation_proxy Browse: more than %d apps", maxApps)
			}
			a := app{bundleID: id, sinf: d["ApplicationSINF"], meta: d["iTunesMetadata"]}
			if a.sinf != nil && a.meta != nil && !b.takeRecord(plistSize(a.sinf)+plistSize(a.meta)) {
				a.sinf, a.meta = nil, nil
				b.records++
			}
			apps = append(apps, a)
		}
		status, _ := r["Status"].(string)
		return status != "Complete", nil
	})
	return apps, err
}

// iconPNG asks springboardservices for an app's icon.
func iconPNG(ctx context.Context, svc plistService, bundleID string) ([]byte, error) {
	var png []byte
	err := svc.exchange(ctx, map[string]any{"command": "getIconPNGData", "bundleId": bundleID}, func(r map[string]any) (bool, error) {
		png, _ = r["pngData"].([]byte)
		return false, nil
	})
	return png, err
}

// afcFile reads a small file from the media partition; a missing or empty
// one gives nil.
func afcFile(ctx context.Context, c *afc.Client, path string) ([]byte, error) {
	info, err := c.FileInfo(ctx, path)
	if errors.Is(err, afc.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if size, _ := strconv.ParseInt(info["st_size"], 10, 64); size <= 0 {
		return nil, nil
	}
	return c.ReadFile(ctx, path, maxAFCFile)
}

// infoPlist builds <UDID>/Info.plist with the keys and values
// libimobiledevice writes, so that Finder, iTunes and idevicebackup2 read
// our backups as their own.
func infoPlist(udid string, v deviceValues, apps []app, files map[string][]byte, books []byte, now time.Time) ([]byte, error) {
	applications := map[string]any{}
	installed := make([]any, 0, len(apps))
	for _, a := range apps {
		installed = append(installed, a.bundleID)
		if a.sinf == nil || a.meta == nil {
			continue
		}
		d := map[string]any{"ApplicationSINF": a.sinf, "iTunesMetadata": a.meta}
		if a.icon != nil {
			d["PlaceholderIcon"] = a.icon
		}
		applications[a.bundleID] = d
	}
	out := map[string]any{
		"Applications":           applications,
		"GUID":                   newGUID(),
		"Installed Applications": installed,
		"Last Backup Date":       now.UTC().Truncate(time.Second),
		"Target Identifier":      udid,
		"Target Type":            "Device",
		"Unique Identifier":      strings.ToUpper(udid),
	}
	copyKey := func(from, to string) {
		if val, ok := v.root[from]; ok && val != nil {
			out[to] = val
		}
	}
	copyKey("BuildVersion", "Build Version")
	copyKey("DeviceName", "Device Name")
	copyKey("DeviceName", "Display Name")
	copyKey("IntegratedCircuitCardIdentity", "ICCID")
	copyKey("InternationalMobileEquipmentIdentity", "IMEI")
	copyKey("MobileEquipmentIdentifier", "MEID")
	if pn, ok := v.root["PhoneNumber"].(string); ok {
		out["Phone Number"] = pn
	}
	copyKey("ProductType", "Product Type")
	copyKey("ProductVersion", "Product Version")
	copyKey("SerialNumber", "Serial Number")
	if books != nil {
		out["iBooks Data 2"] = books
	}
	itf := map[string]any{}
	for name, b := range files {
		itf[name] = b
	}
	out["iTunes Files"] = itf
	if v.itunesSettings != nil {
		out["iTunes Settings"] = v.itunesSettings
	} else {
		out["iTunes Settings"] = map[string]any{}
	}
	if v.minITunes != nil {
		out["iTunes Version"] = v.minITunes
	} else {
		out["iTunes Version"] = defaultITunesVer
	}
	return wire.Encode(out, wire.XML)
}

// newGUID is a random 32-digit upper-case hex string, the form
// libimobiledevice gives Info.plist's GUID.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}
