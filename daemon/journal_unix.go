//go:build unix

package daemon

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// isStream reports whether w is the file whose "dev:ino" is
// journalStream, as sd_journal_stream_fd(3) says to check.
func isStream(w io.Writer, journalStream string) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	var dev, ino uint64
	if n, err := fmt.Sscanf(journalStream, "%d:%d", &dev, &ino); n != 2 || err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}
