// Package fileset is a simulated iPhone's file set: a deterministic,
// synthetic list of files with content generated on the fly, so that a
// simulated device of many gigabytes costs only its metadata in memory.
//
// The same Spec always yields the same files, paths, sizes and bytes, on
// every platform. Mutate and Delete change a deterministic share of the
// files between backups, which is what incremental backups are tested
// with.
package fileset

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"sync"
	"time"
)

// DefaultDomains returns the backup domains files are spread over when a
// Spec names none.
func DefaultDomains() []string {
	return []string{
		"HomeDomain",
		"CameraRollDomain",
		"MediaDomain",
		"AppDomain-com.example.notes",
		"AppDomain-com.example.chat",
	}
}

// File modes as the device reports them in Manifest.db (type bits
// included).
const (
	ModeFile uint32 = 0o100644
	ModeDir  uint32 = 0o040755
)

// Spec describes a file set.
type Spec struct {
	// Seed makes two sets with equal specs identical, and sets with
	// different seeds unrelated.
	Seed int64
	// Files is the number of regular files.
	Files int
	// MinSize and MaxSize bound file sizes (inclusive). Sizes are
	// log-uniform: each power-of-two bucket between them is equally
	// likely, and the size is uniform within its bucket. Photos, app data
	// and caches span several orders of magnitude, so a uniform
	// distribution would make every file "large". MaxSize 0 means 1 MiB.
	MinSize, MaxSize int64
	// Domains to spread files over, round robin; nil means
	// DefaultDomains().
	Domains []string
	// FilesPerDir is how many files share a directory; 0 means 50.
	FilesPerDir int
}

// File is one regular file or directory of the set, as of one
// generation.
type File struct {
	// Index is the file's stable position in the set.
	Index        int
	Domain       string
	RelativePath string
	// FileID is the hex SHA-1 of "Domain-RelativePath", the file's name
	// in a backup.
	FileID string
	Size   int64
	Mode   uint32
	// Generation starts at 1 and grows with each change of content.
	Generation uint64
	// ModTime changes with the generation.
	ModTime time.Time
	// Deleted files are gone from the device but keep their index.
	Deleted bool

	seed uint64
}

// IsDir reports whether f is a directory entry.
func (f File) IsDir() bool { return f.Mode&0o170000 == 0o040000 }

// BackupPath is where the file lives inside a device's backup directory:
// "xx/<fileID>", xx being the first two hex digits.
func (f File) BackupPath() string { return BackupPath(f.FileID) }

// Open returns a reader of the file's content as of f's generation. The
// reader is independent of the set: later mutations do not affect it.
func (f File) Open() *Reader {
	if f.IsDir() || f.Deleted {
		return &Reader{}
	}
	return &Reader{key: contentKey(f.seed, f.Index, f.Generation), size: f.Size}
}

// FileID computes the backup file ID of a domain and relative path.
func FileID(domain, relativePath string) string {
	sum := sha1.Sum([]byte(domain + "-" + relativePath))
	return hex.EncodeToString(sum[:])
}

// BackupPath returns "xx/<fileID>".
func BackupPath(fileID string) string {
	if len(fileID) < 2 {
		return fileID
	}
	return fileID[:2] + "/" + fileID
}

// baseTime anchors modification times; any fixed instant works.
func baseTime() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

// Set is a device's file set. It is safe for concurrent use.
type Set struct {
	spec Spec
	seed uint64

	mu    sync.RWMutex
	files []File
	dirs  []File

	byIDOnce sync.Once
	byID     map[string]int // fileID → index into files, for AsOf
}

// New builds the set a spec describes.
func New(spec Spec) (*Set, error) {
	if spec.Files < 0 {
		return nil, errors.New("fileset: negative file count")
	}
	if spec.MaxSize == 0 {
		spec.MaxSize = 1 << 20
	}
	if spec.MinSize < 0 || spec.MaxSize < spec.MinSize {
		return nil, fmt.Errorf("fileset: bad size range %d..%d", spec.MinSize, spec.MaxSize)
	}
	if len(spec.Domains) == 0 {
		spec.Domains = DefaultDomains()
	}
	if spec.FilesPerDir <= 0 {
		spec.FilesPerDir = 50
	}
	s := &Set{spec: spec, seed: uint64(spec.Seed)}
	s.files = make([]File, spec.Files)
	dirSeen := map[[2]string]bool{}
	for i := range s.files {
		domain := spec.Domains[i%len(spec.Domains)]
		// Number files within their domain so directories fill up.
		n := i / len(spec.Domains)
		dir := dirFor(domain, n/spec.FilesPerDir)
		rel := fmt.Sprintf("%s/%s", dir, fileName(domain, n))
		f := File{
			Index:        i,
			Domain:       domain,
			RelativePath: rel,
			FileID:       FileID(domain, rel),
			Mode:         ModeFile,
			Generation:   1,
			seed:         s.seed,
		}
		s.setGeneration(&f, 1)
		s.files[i] = f
		// The directory and its parents, once each.
		for d := dir; d != ""; d = parent(d) {
			k := [2]string{domain, d}
			if dirSeen[k] {
				break
			}
			dirSeen[k] = true
			s.dirs = append(s.dirs, File{
				Index:        -1,
				Domain:       domain,
				RelativePath: d,
				FileID:       FileID(domain, d),
				Mode:         ModeDir,
				Generation:   1,
				ModTime:      baseTime(),
				seed:         s.seed,
			})
		}
	}
	slices.SortFunc(s.dirs, func(a, b File) int {
		if a.Domain != b.Domain {
			if a.Domain < b.Domain {
				return -1
			}
			return 1
		}
		if a.RelativePath < b.RelativePath {
			return -1
		}
		if a.RelativePath > b.RelativePath {
			return 1
		}
		return 0
	})
	return s, nil
}

// dirFor names the k-th directory of a domain in the style of that domain.
func dirFor(domain string, k int) string {
	switch domain {
	case "CameraRollDomain":
		return fmt.Sprintf("Media/DCIM/%03dAPPLE", 100+k)
	case "MediaDomain":
		return fmt.Sprintf("Media/Recordings/%02d", k)
	case "HomeDomain":
		return fmt.Sprintf("Library/Preferences/d%03d", k)
	}
	return fmt.Sprintf("Documents/d%03d", k)
}

func fileName(domain string, n int) string {
	switch domain {
	case "CameraRollDomain":
		return fmt.Sprintf("IMG_%04d.HEIC", n)
	case "MediaDomain":
		return fmt.Sprintf("rec%05d.m4a", n)
	case "HomeDomain":
		return fmt.Sprintf("com.example.pref%05d.plist", n)
	}
	return fmt.Sprintf("file%05d.dat", n)
}

func parent(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

// setGeneration derives a file's size and time from its generation.
func (s *Set) setGeneration(f *File, gen uint64) {
	f.Generation = gen
	f.Size = s.size(f.Index, gen)
	f.ModTime = baseTime().Add(time.Duration(f.Index)*time.Second + time.Duration(gen-1)*time.Hour)
}

// size draws a log-uniform size with integer arithmetic only, so that it
// is the same on every platform.
func (s *Set) size(index int, gen uint64) int64 {
	lo, hi := uint64(s.spec.MinSize), uint64(s.spec.MaxSize)
	if lo == hi {
		return int64(lo)
	}
	r := mix(s.seed ^ mix(uint64(index)+0x5151) ^ mix(gen+0xA5A5))
	loBits, hiBits := bits.Len64(lo), bits.Len64(hi)
	b := loBits + int(r%uint64(hiBits-loBits+1))
	// Bucket b holds the values of bit length b: [2^(b-1), 2^b).
	var bucketLo, bucketHi uint64
	if b > 0 {
		bucketLo, bucketHi = 1<<(b-1), 1<<b-1
	}
	bucketLo, bucketHi = max(bucketLo, lo), min(bucketHi, hi)
	v := bucketLo + mix(r)%(bucketHi-bucketLo+1)
	return int64(v)
}

// Spec returns the spec the set was built from, with defaults filled in.
func (s *Set) Spec() Spec {
	spec := s.spec
	spec.Domains = slices.Clone(spec.Domains)
	return spec
}

// Len is the number of regular files, deleted ones included.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.files)
}

// File returns file i as it is now.
func (s *Set) File(i int) File {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.files[i]
}

// Files returns a consistent snapshot of all regular files, deleted ones
// included (check File.Deleted).
func (s *Set) Files() []File {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.files)
}

// Dirs returns the directory entries of the set, sorted by domain and
// path. They never change.
func (s *Set) Dirs() []File {
	return slices.Clone(s.dirs)
}

// TotalSize is the content size of all files present now.
func (s *Set) TotalSize() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var n int64
	for _, f := range s.files {
		if !f.Deleted {
			n += f.Size
		}
	}
	return n
}

// Open returns a reader of file i's current content.
func (s *Set) Open(i int) io.Reader { return s.File(i).Open() }

// Hash returns the SHA-256 of file i's current content.
func (s *Set) Hash(i int) [32]byte { return Hash(s.File(i)) }

// Hash returns the SHA-256 of f's content.
func Hash(f File) [32]byte {
	h := sha256.New()
	if _, err := io.Copy(h, f.Open()); err != nil {
		panic(err) // a generated reader cannot fail
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Mutate changes the content of round(share × present files) files,
// chosen deterministically from seed: each gets a new generation, and with
// it new bytes, a new size and a new modification time. It returns the
// indexes changed, in increasing order.
func (s *Set) Mutate(share float64, seed int64) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	picked := s.pick(share, seed, 0x4D75)
	for _, i := range picked {
		s.setGeneration(&s.files[i], s.files[i].Generation+1)
	}
	return picked
}

// Delete removes round(share × present files) files from the device,
// chosen deterministically from seed, and returns their indexes in
// increasing order.
func (s *Set) Delete(share float64, seed int64) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	picked := s.pick(share, seed, 0xDE1E)
	for _, i := range picked {
		s.files[i].Deleted = true
	}
	return picked
}

// pick chooses a share of the present files with a partial Fisher-Yates
// shuffle driven by a seeded counter. The caller holds the write lock.
func (s *Set) pick(share float64, seed int64, salt uint64) []int {
	present := make([]int, 0, len(s.files))
	for i, f := range s.files {
		if !f.Deleted {
			present = append(present, i)
		}
	}
	share = min(max(share, 0), 1)
	k := int(share*float64(len(present)) + 0.5)
	state := mix(uint64(seed) ^ salt ^ s.seed)
	for j := 0; j < k; j++ {
		state = mix(state + 0x9E3779B97F4A7C15)
		r := j + int(state%uint64(len(present)-j))
		present[j], present[r] = present[r], present[j]
	}
	picked := present[:k]
	slices.Sort(picked)
	return slices.Clone(picked)
}

// mix is SplitMix64's finaliser: a fast bijective hash of 64 bits.
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func contentKey(seed uint64, index int, gen uint64) uint64 {
	return mix(seed ^ mix(uint64(index)^0x636F6E74) ^ mix(gen^0x67656E))
}

// Reader yields a file's generated content. Word k of the content is
// mix(key + k·φ), SplitMix64 in counter mode: every byte depends on the
// file, its generation and its position, any offset can be produced
// without the ones before it, and it runs at several GB/s (faster than
// ChaCha8, and we need no cryptographic strength).
type Reader struct {
	key  uint64
	size int64
	off  int64
}

const golden = 0x9E3779B97F4A7C15

func (r *Reader) word(k uint64) uint64 { return mix(r.key + k*golden) }

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	left := r.size - r.off
	if left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n := len(p)
	off := r.off
	// Leading partial word.
	if rem := off & 7; rem != 0 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.word(uint64(off>>3)))
		c := copy(p, w[rem:])
		p = p[c:]
		off += int64(c)
	}
	// Whole words.
	k := uint64(off >> 3)
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, mix(r.key+k*golden))
		p = p[8:]
		k++
	}
	// Trailing partial word.
	if len(p) > 0 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], r.word(k))
		copy(p, w[:])
	}
	r.off += int64(n)
	return n, nil
}

// Size is the content length.
func (r *Reader) Size() int64 { return r.size }
