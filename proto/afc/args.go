package afc

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The argument layouts below are the ones libimobiledevice and go-ios send.
// Both sides of our code use these helpers, so the layouts live in one
// place.

// U64 encodes v as 8 little-endian bytes.
func U64(v uint64) []byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return b[:]
}

// CString encodes s NUL-terminated.
func CString(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// PathArg decodes a path argument: the bytes up to the first NUL. A
// missing terminator is accepted because go-ios omits it for ReadDir and
// GetFileInfo.
func PathArg(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// EncodeOpen builds the FileOpen arguments: mode, then the path.
func EncodeOpen(mode FileMode, path string) []byte {
	return append(U64(uint64(mode)), CString(path)...)
}

// DecodeOpen parses the FileOpen arguments.
func DecodeOpen(b []byte) (FileMode, string, error) {
	if len(b) < 8 {
		return 0, "", fmt.Errorf("file open arguments of %d bytes: %w", len(b), ErrMalformed)
	}
	return FileMode(binary.LittleEndian.Uint64(b)), PathArg(b[8:]), nil
}

// DecodeU64 parses the leading u64 of an argument block: a file handle, a
// status code, a position.
func DecodeU64(b []byte) (uint64, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("argument of %d bytes, want 8: %w", len(b), ErrMalformed)
	}
	return binary.LittleEndian.Uint64(b), nil
}

// EncodeHandleArg builds the handle-plus-number arguments of FileRead
// (length), FileLock (operation) and FileSetSize (size).
func EncodeHandleArg(handle, v uint64) []byte {
	return append(U64(handle), U64(v)...)
}

// DecodeHandleArg parses what EncodeHandleArg builds.
func DecodeHandleArg(b []byte) (handle, v uint64, err error) {
	if len(b) < 16 {
		return 0, 0, fmt.Errorf("handle arguments of %d bytes, want 16: %w", len(b), ErrMalformed)
	}
	return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), nil
}

// DecodeTwoPaths parses the two NUL-terminated paths of RenamePath.
func DecodeTwoPaths(b []byte) (from, to string, err error) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", "", fmt.Errorf("rename arguments without a separator: %w", ErrMalformed)
	}
	return string(b[:i]), PathArg(b[i+1:]), nil
}

// EncodeStrings joins list the way directory listings and info replies
// travel: each string followed by a NUL.
func EncodeStrings(list ...string) []byte {
	n := 0
	for _, s := range list {
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	for _, s := range list {
		b = append(append(b, s...), 0)
	}
	return b
}

// SplitStrings splits a NUL-separated list. Trailing bytes without a
// terminator count as a last string, as libimobiledevice does not, but a
// lenient reader loses nothing a strict one would keep.
func SplitStrings(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out
}

// ParseKeyValues decodes a GetFileInfo or GetDeviceInfo reply: key, value,
// key, value, each NUL-terminated.
func ParseKeyValues(b []byte) (map[string]string, error) {
	list := SplitStrings(b)
	if len(list)%2 != 0 {
		return nil, fmt.Errorf("%d strings in a key/value list: %w", len(list), ErrMalformed)
	}
	m := make(map[string]string, len(list)/2)
	for i := 0; i < len(list); i += 2 {
		m[list[i]] = list[i+1]
	}
	return m, nil
}
