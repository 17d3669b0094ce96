package sim

import (
	"fmt"

	"github.com/backupd/backupd/sim/backupsvc"
	"github.com/backupd/backupd/sim/syncsvc"
)

// floodApps are the apps of backupsvc.HostileAppFlood: as many as
// installation_proxy may list, each with App Store records (1 KiB each,
// 20 MiB in all: more than Info.plist keeps).
func floodApps() []syncsvc.App {
	sinf := make([]byte, 1<<10)
	apps := make([]syncsvc.App, backupsvc.AppFloodApps)
	for i := range apps {
		id := fmt.Sprintf("com.example.flood%05d", i)
		apps[i] = syncsvc.App{BundleID: id, DisplayName: id, Version: "1", SINF: sinf, ITunesMetadata: sinf}
	}
	return apps
}

// floodIcons answers every flood app's icon request with the same
// AppFloodIconSize bytes (one buffer: the simulator does not pay for the
// flood).
func floodIcons() map[string][]byte {
	icon := make([]byte, backupsvc.AppFloodIconSize)
	copy(icon, "\x89PNG\r\n\x1a\n")
	icons := make(map[string][]byte, backupsvc.AppFloodApps)
	for i := range backupsvc.AppFloodApps {
		icons[fmt.Sprintf("com.example.flood%05d", i)] = icon
	}
	return icons
}
