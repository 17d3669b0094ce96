package backupsvc

import (
	"fmt"
	"maps"
	"slices"

	"github.com/backupd/backupd/proto/devicelink"
	"github.com/backupd/backupd/proto/wire"
	"github.com/backupd/backupd/sim/fileset"
)

// What the device asks of the host's directories.
//
// A real iPhone asks DLContentsOfDirectory for the backup folder and its
// Snapshot at the start, and for every xx/ folder at the end, and decides
// from the answers what it must send again; a listing that disagrees with
// what it knows it has on the computer (a size, a 0-byte file left out, a
// missing directory) ends the backup with ErrorCode 205. The simulator
// does the same against its own manifest: the sizes of the files the
// host gave it at the start, and the files it sent at the end. It
// compares no dates: hosts disagree about their epoch (libimobiledevice
// 1.3.0 sends Unix seconds as Apple-epoch ones), and phones cope.

// Unreadable files.
//
// With Faults.UnreadableFiles the device cannot read some of its own
// files: each goes out as an error block alone ("Input/output error") and
// the backup still ends with ErrorCode 0, as real iPhones do. The device
// knows it did not send them, so it leaves them out of its checks and
// sends them again in the next backup.

// unreadableMessage is what an iPhone says of a file it could not read.
const unreadableMessage = "Input/output error"

// listed is one entry of a host's listing.
type listed struct {
	dir  bool
	size int64
}

// list asks the host for the contents of dir. A listing that is not a
// dictionary of entries with a known type and a size is one no host
// sends, and ends the backup with 205 (done is true).
func (s *session) list(dir string) (entries map[string]listed, done bool, err error) {
	st, err := s.ask(devicelink.MsgContentsOfDir, dir)
	if err != nil {
		return nil, true, err
	}
	bad := func(why string) (map[string]listed, bool, error) {
		return nil, true, s.finish(CodeCorruptManifest, fmt.Sprintf("The computer's listing of %s is wrong: %s", dir, why))
	}
	if st.Code != 0 {
		return bad(fmt.Sprintf("error %d %s", st.Code, st.Description))
	}
	m, ok := st.Payload.(map[string]any)
	if !ok {
		return bad(fmt.Sprintf("a %T, not a dictionary", st.Payload))
	}
	s.stats.dirChecked()
	entries = make(map[string]listed, len(m))
	for name, v := range m {
		e, _ := v.(map[string]any)
		size, ok := wire.Uint(e["DLFileSize"])
		if !ok || size > 1<<62 {
			return bad(fmt.Sprintf("%s has no size", name))
		}
		switch e["DLFileType"] {
		case "DLFileTypeDirectory":
			entries[name] = listed{dir: true, size: int64(size)}
		case "DLFileTypeRegular", "DLFileTypeUnknown":
			entries[name] = listed{size: int64(size)}
		default:
			return bad(fmt.Sprintf("%s has file type %v", name, e["DLFileType"]))
		}
	}
	return entries, false, nil
}

// checkStartListing lists the backup folder and its Snapshot and compares
// the folder with what the host sent of it (s.downloaded): each file
// downloaded must be listed as a file of the size that came, and one the
// host lacked must not be listed as a file.
func (s *session) checkStartListing() (done bool, err error) {
	top, done, err := s.list(s.target)
	if done {
		return done, err
	}
	for _, p := range slices.Sorted(maps.Keys(s.downloaded)) {
		name, ok := s.inTarget(p)
		if !ok {
			continue
		}
		e, found := top[name]
		switch size := s.downloaded[p]; {
		case size < 0 && found && !e.dir:
			return true, s.finish(CodeCorruptManifest, fmt.Sprintf("The computer lists %s as %s, but did not have it", p, describe(e, found)))
		case size >= 0 && (!found || e.dir || e.size != size):
			return true, s.finish(CodeCorruptManifest, fmt.Sprintf("The computer lists %s as %s, but sent %d bytes of it", p, describe(e, found), size))
		}
	}
	_, done, err = s.list(s.target + "/Snapshot")
	return done, err
}

// noteDownload records what the host sent of p: its size, or -1 when it
// had none.
func (s *session) noteDownload(p string, size int64) {
	if s.downloaded == nil {
		s.downloaded = map[string]int64{}
	}
	s.downloaded[p] = size
}

// inTarget returns the name of p in the backup folder, if p is directly
// in it.
func (s *session) inTarget(p string) (string, bool) {
	prefix := s.target + "/"
	if len(p) <= len(prefix) || p[:len(prefix)] != prefix {
		return "", false
	}
	name := p[len(prefix):]
	for i := 0; i < len(name); i++ {
		if name[i] == '/' {
			return "", false
		}
	}
	return name, true
}

// checkEndListing lists every xx/ folder of the backup once the files are
// in place and compares it with the device's own manifest: each file it
// has on the computer must be listed, as a file, with the size it sent
// (0-byte files included). Files it could not read are left out; entries
// it does not know are no concern of its own.
func (s *session) checkEndListing(files []fileset.File) (done bool, err error) {
	byDir := map[string][]fileset.File{}
	for _, f := range files {
		if f.Deleted || s.unsent[f.FileID] {
			continue
		}
		byDir[f.FileID[:2]] = append(byDir[f.FileID[:2]], f)
	}
	for _, xx := range slices.Sorted(maps.Keys(byDir)) {
		dir := s.target + "/" + xx
		entries, done, err := s.list(dir)
		if done {
			return done, err
		}
		for _, f := range byDir[xx] {
			e, found := entries[f.FileID]
			if want := s.wireSize(f); !found || e.dir || e.size != want {
				return true, s.finish(CodeCorruptManifest, fmt.Sprintf("The computer lists %s/%s as %s, but it holds %d bytes", dir, f.FileID, describe(e, found), want))
			}
		}
	}
	return false, nil
}

func describe(e listed, found bool) string {
	switch {
	case !found:
		return "missing"
	case e.dir:
		return "a directory"
	}
	return fmt.Sprintf("%d bytes", e.size)
}

// cannotRead reports whether the next data file is one the device cannot
// read (Faults.UnreadableFiles), counting it.
func (s *session) cannotRead() bool {
	if s.sentUnreadable >= s.cfg.Faults.UnreadableFiles {
		return false
	}
	s.sentUnreadable++
	return true
}

// sendUnreadable sends file as a real iPhone sends one it cannot read:
// its names, then an error block and nothing else.
func (s *session) sendUnreadable(fw *devicelink.FileWriter, devName, path string, file fileset.File) error {
	if err := fw.Begin(devName, path); err != nil {
		return fmt.Errorf("backupsvc: upload %s: %w", path, err)
	}
	if err := fw.Fail(unreadableMessage); err != nil {
		return fmt.Errorf("backupsvc: upload %s: %w", path, err)
	}
	s.unsent[file.FileID] = true
	s.stats.unreadable()
	return nil
}

func (s *Stats) dirChecked() {
	s.mu.Lock()
	s.current.DirsChecked++
	s.mu.Unlock()
}

func (s *Stats) unreadable() {
	s.mu.Lock()
	s.current.Unreadable++
	s.mu.Unlock()
}
