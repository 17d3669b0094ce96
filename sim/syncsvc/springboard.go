package syncsvc

import (
	"bytes"
	"context"
	"crypto/sha1"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"

	"github.com/backupd/backupd/proto/wire"
)

// SpringboardConfig configures one springboardservices connection.
type SpringboardConfig struct {
	// Icons maps bundle IDs to PNG data. Apps not in it get
	// PlaceholderIcon.
	Icons map[string][]byte
}

// PlaceholderIcon returns a small valid PNG whose colour is derived from
// bundleID, so each app's icon is stable and distinct.
func PlaceholderIcon(bundleID string) []byte {
	sum := sha1.Sum([]byte(bundleID))
	const size = 8
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	c := color.NRGBA{R: sum[0], G: sum[1], B: sum[2], A: 0xff}
	for y := range size {
		for x := range size {
			img.SetNRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err) // encoding an in-memory image into a buffer cannot fail
	}
	return buf.Bytes()
}

// ServeSpringboard serves com.apple.springboardservices on conn:
// getIconPNGData {bundleId} → {pngData}, which a backup stores as each
// app's PlaceholderIcon, plus getHomeScreenWallpaperPNGData,
// getInterfaceOrientation, getIconState and setIconState (no answer). Any
// other command gets an empty dictionary, so a host never waits for an
// answer that will not come.
func ServeSpringboard(ctx context.Context, conn net.Conn, cfg SpringboardConfig) error {
	const service = "springboardservices"
	defer own(ctx, conn)()
	for {
		req, err := readDict(conn)
		if err != nil {
			return ended(ctx, service, err)
		}
		cmd, ok := str(req, "command")
		if !ok {
			return ended(ctx, service, fmt.Errorf("request without a command: %w", ErrMalformed))
		}
		var reply any
		switch cmd {
		case "getIconPNGData":
			id, ok := str(req, "bundleId")
			if !ok {
				reply = map[string]any{}
				break
			}
			icon, ok := cfg.Icons[id]
			if !ok {
				icon = PlaceholderIcon(id)
			}
			reply = map[string]any{"pngData": icon}
		case "getHomeScreenWallpaperPNGData":
			reply = map[string]any{"pngData": PlaceholderIcon("wallpaper")}
		case "getInterfaceOrientation":
			reply = map[string]any{"interfaceOrientation": uint64(1)} // portrait
		case "getIconState":
			reply = []any{[]any{}} // one empty page: the dock
		case "setIconState":
			continue
		default:
			reply = map[string]any{}
		}
		if err := wire.WritePlist(conn, reply, wire.Binary); err != nil {
			return ended(ctx, service, err)
		}
	}
}
