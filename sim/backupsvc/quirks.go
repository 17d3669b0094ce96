package backupsvc

import (
	"fmt"
	"io"

	"github.com/backupd/backupd/proto/devicelink"
)

// This file holds what real iPhones do that a host must live with
// (Faults.AnnouncedShare, RepeatDeviceReady, UnknownMessage,
// EndRedownload): none of it is an error, and a host that fails on it
// fails on real phones.

// announced is what the device announces for an upload round of total
// bytes: less than it sends, as real iPhones do.
func (s *session) announced(total int64) int64 {
	share := s.cfg.Faults.AnnouncedShare
	if share <= 0 {
		share = DefaultAnnouncedShare
	}
	return int64(float64(total) * share)
}

// notices sends the messages that expect no answer: DLMessageDeviceReady
// again, and a message no host knows. The next request's status response
// must be the answer to that request, not to these.
func (s *session) notices() error {
	f := s.cfg.Faults
	if f.RepeatDeviceReady {
		if err := s.dl.WriteMessage(devicelink.MsgDeviceReady); err != nil {
			return fmt.Errorf("backupsvc: send DeviceReady: %w", err)
		}
	}
	if f.UnknownMessage {
		if err := s.dl.WriteMessage(MsgUnknown, map[string]any{"Note": "no answer expected"}); err != nil {
			return fmt.Errorf("backupsvc: send %s: %w", MsgUnknown, err)
		}
	}
	return nil
}

// redownload fetches Status.plist, Manifest.plist and Manifest.db back
// from the host at the end of a backup, then thinks over them. What the
// host has of them is read and dropped; one it lacks is fine.
func (s *session) redownload() error {
	items := []downloadItem{
		{path: s.target + "/Status.plist", w: io.Discard, limit: maxPlistDownload},
		{path: s.target + "/Manifest.plist", w: io.Discard, limit: maxPlistDownload},
		{path: s.target + "/Manifest.db", w: io.Discard, limit: maxManifestDB},
	}
	if _, err := s.download(items); err != nil {
		return err
	}
	return s.wait(s.cfg.Faults.ThinkPause)
}
