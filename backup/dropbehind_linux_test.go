package backup

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestLargeFileLeavesPageCache writes a large file as an upload does and
// checks that only its last chunks stay in the page cache, while every
// byte of it is there to read.
func TestLargeFileLeavesPageCache(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		// A tmpfs file lives in the page cache; there is nothing to drop.
		t.Skip("the temporary directory is on tmpfs")
	}
	fs, err := openStagingFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	const size = 12 * writebackChunk
	nf, err := fs.create("big")
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{0x5a}, 256<<10)
	for n := 0; n < size; n += len(chunk) {
		if _, err := nf.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := nf.commit(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (size+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	cached := 0
	for _, v := range vec {
		cached += int(v & 1)
	}
	cachedBytes := cached * os.Getpagesize()
	// The last two chunks may still be cached (one being written out, one
	// written after it); everything before them must have been dropped.
	if cachedBytes > 3*writebackChunk {
		t.Errorf("%d MiB of a %d MiB file stay in the page cache, want at most %d MiB", cachedBytes>>20, size>>20, 3*writebackChunk>>20)
	}
	if st, err := f.Stat(); err != nil || st.Size() != size {
		t.Fatalf("size %v, %v; want %d", st.Size(), err, size)
	}
	if bytes.Count(m[:size/2], []byte{0x5a}) != size/2 {
		t.Error("the dropped part of the file does not read back as written")
	}
}
