package repo

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// reflink makes dst a copy-on-write clone of src with the FICLONE ioctl
// (btrfs, xfs with reflink=1, bcachefs): no data is copied and, unlike a
// hard link, the two files are independent afterwards. dst is a new file
// this function creates; src is opened read-only. File systems without it
// (ext4, tmpfs) say EOPNOTSUPP, or EXDEV across file systems, and nothing
// is left behind.
func reflink(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(dst)
		}
	}()
	err = unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
	switch {
	case err == nil:
		// Like a hard link or a copy, keep the modification time.
		fi, err := in.Stat()
		if err != nil {
			return err
		}
		return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOTTY),
		errors.Is(err, unix.ENOSYS), errors.Is(err, errors.ErrUnsupported):
		return errors.Join(errNoReflink, err)
	}
	return &os.LinkError{Op: "reflink", Old: src, New: dst, Err: err}
}
