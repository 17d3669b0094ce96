package store

// UnreadableFile is a file the iPhone listed in a backup but could not
// read when it sent it (it came as an error block, "Input/output
// error"). A run records them whether the backup was kept (the phone
// called it successful) or not (ErrorCode 104).
type UnreadableFile struct {
	// Name is the iPhone's own name for the file, "Domain/path".
	Name string `json:"name,omitempty"`
	// Path is where the device put it in the backup
	// ("<UDID>/Snapshot/xx/<fileID>").
	Path string `json:"path,omitempty"`
	// Message is the device's error.
	Message string `json:"message,omitempty"`
}

// MaxUnreadableRecorded bounds the files a run record lists by name, so
// that a phone that could not read thousands of files keeps its record
// small; Run.UnreadableCount counts them all.
const MaxUnreadableRecorded = 100
