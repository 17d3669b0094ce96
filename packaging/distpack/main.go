// Command distpack writes backupd's release archives and their checksums
// the same, byte for byte, from the same files: entries sorted, every
// mtime SOURCE_DATE_EPOCH, owner root (0:0), modes 0755 for executables
// and folders and 0644 for the rest, and no gzip name or time. Used by
// scripts/dist.sh; Go's archive packages make it work the same on any
// machine that builds backupd, with no GNU tar or zip needed.
//
//	distpack tar|zip OUT DIR   archive DIR, its entries under DIR's name
//	distpack sums OUT FILE...  a SHA256SUMS file of FILEs, by base name
package main

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "distpack:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: distpack tar|zip OUT DIR, or distpack sums OUT FILE")
	}
	switch args[0] {
	case "tar", "zip":
		if len(args) != 3 {
			return fmt.Errorf("usage: distpack %s OUT DIR", args[0])
		}
		mtime, err := sourceDate()
		if err != nil {
			return err
		}
		entries, err := collect(args[2])
		if err != nil {
			return err
		}
		return writeArchive(args[0], args[1], entries, mtime)
	case "sums":
		return writeSums(args[1], args[2:])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// sourceDate is SOURCE_DATE_EPOCH, the reproducible-builds.org variable.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH is not set")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// entry is one file or folder to archive.
type entry struct {
	name string // slash-separated, under the folder's base name
	path string // on disk
	dir  bool
	exec bool
}

// collect lists dir and everything under it, sorted by name.
func collect(dir string) ([]entry, error) {
	base := filepath.Base(filepath.Clean(dir))
	var out []entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(filepath.Join(base, rel))
		switch {
		case d.IsDir():
			out = append(out, entry{name: name + "/", path: p, dir: true})
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			out = append(out, entry{name: name, path: p, exec: fi.Mode()&0o111 != 0})
		default:
			return fmt.Errorf("%s: neither a file nor a folder", p)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, err
}

func (e entry) mode() int64 {
	if e.dir || e.exec {
		return 0o755
	}
	return 0o644
}

func writeArchive(kind, out string, entries []entry, mtime time.Time) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if kind == "tar" {
		err = writeTar(f, entries, mtime)
	} else {
		err = writeZip(f, entries, mtime)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func writeTar(w io.Writer, entries []entry, mtime time.Time) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode(), ModTime: mtime, Format: tar.FormatUSTAR, Uname: "root", Gname: "root"}
		if e.dir {
			h.Typeflag = tar.TypeDir
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		data, err := os.ReadFile(e.path)
		if err != nil {
			return err
		}
		h.Typeflag, h.Size = tar.TypeReg, int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeZip(w io.Writer, entries []entry, mtime time.Time) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Modified: mtime, Method: zip.Deflate}
		h.SetMode(fs.FileMode(e.mode()))
		if e.dir {
			h.SetMode(fs.ModeDir | 0o755)
			h.Method = zip.Store
		}
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if e.dir {
			continue
		}
		data, err := os.ReadFile(e.path)
		if err != nil {
			return err
		}
		if _, err := fw.Write(data); err != nil {
			return err
		}
	}
	return zw.Close()
}

// writeSums writes "sha256  name" lines, sorted by name, as sha256sum
// does, so `sha256sum -c SHA256SUMS` checks them.
func writeSums(out string, files []string) error {
	sort.Slice(files, func(i, j int) bool { return filepath.Base(files[i]) < filepath.Base(files[j]) })
	var text []byte
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		text = fmt.Appendf(text, "%x  %s\n", h.Sum(nil), filepath.Base(p))
	}
	return os.WriteFile(out, text, 0o644)
}
