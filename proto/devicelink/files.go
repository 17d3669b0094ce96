package devicelink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Block codes of the raw file framing.
const (
	// CodeFileData marks a block of file content.
	CodeFileData byte = 0x0C
	// CodeEndOfFile marks the end of a file; its block length is exactly 1.
	CodeEndOfFile byte = 0x00
	// CodeHostError marks the host's error for a file it cannot send
	// (host → device). No end-of-file block follows it.
	CodeHostError byte = 0x06
	// CodeDeviceError marks the device's error for a file (device → host).
	CodeDeviceError byte = 0x0B
)

// DefaultBlockSize is how much file content the writers put in one block.
const DefaultBlockSize = 1 << 20

// Direction selects one of the two file framings.
type Direction int

const (
	// Upload is device → host (DLMessageUploadFiles): each file carries the
	// device's name for it and its path in the backup, and errors use
	// CodeDeviceError.
	Upload Direction = iota
	// Download is host → device (DLMessageDownloadFiles): each file carries
	// its path, and errors use CodeHostError.
	Download
)

func (d Direction) names() int {
	if d == Upload {
		return 2
	}
	return 1
}

func (d Direction) errCode() byte {
	if d == Upload {
		return CodeDeviceError
	}
	return CodeHostError
}

func (d Direction) String() string {
	if d == Upload {
		return "upload"
	}
	return "download"
}

// RemoteFileError is the peer's error for one file, sent in the stream
// instead of (or, from some devices, after) the file's content.
type RemoteFileError struct {
	Message string
	// AfterData is true when content blocks preceded the error block.
	// libimobiledevice treats that form as a normal end of file.
	AfterData bool
}

func (e *RemoteFileError) Error() string {
	return "devicelink: peer could not send the file: " + e.Message
}

// FileReader reads a file stream: a sequence of files, each a header and
// blocks, ended by a zero length. Use Next to advance to a file and Read to
// read its content. Next skips whatever is left of the current file.
type FileReader struct {
	c   *Conn
	dir Direction

	// state of the current file
	inFile    bool
	remaining uint32 // content bytes left in the current data block
	sawData   bool
	ended     bool  // the stream's zero terminator was read
	err       error // sticky
	fileErr   error // io.EOF or *RemoteFileError once the file ended
	empties   int   // consecutive empty data blocks
	skipBuf   []byte
	nameBuf   []byte
	headerBuf [5]byte
}

// FileHeader names a file in a stream.
type FileHeader struct {
	// DeviceName is the device's own name for the file (uploads only).
	DeviceName string
	// Path is the file's path relative to the backup directory. It is
	// untrusted: confine it before touching the file system.
	Path string
}

// NewFileReader starts reading a file stream in direction d.
func (c *Conn) NewFileReader(d Direction) *FileReader {
	return &FileReader{c: c, dir: d}
}

// Next advances to the next file. It returns io.EOF after the stream's
// terminator, after which the connection carries messages again.
func (fr *FileReader) Next() (FileHeader, error) {
	if fr.err != nil {
		return FileHeader{}, fr.err
	}
	if fr.ended {
		return FileHeader{}, io.EOF
	}
	if fr.inFile {
		if err := fr.skipRest(); err != nil {
			return FileHeader{}, err
		}
	}
	var h FileHeader
	for i := 0; i < fr.dir.names(); i++ {
		name, end, err := fr.readName(i == 0)
		if err != nil {
			return FileHeader{}, fr.fail(err)
		}
		if end {
			fr.ended = true
			return FileHeader{}, io.EOF
		}
		if fr.dir == Upload && i == 0 {
			h.DeviceName = name
		} else {
			h.Path = name
		}
	}
	fr.inFile, fr.remaining, fr.sawData, fr.fileErr = true, 0, false, nil
	return h, nil
}

// readName reads a length-prefixed name. A zero length ends the stream
// when it may (first name of a file), and is a protocol error otherwise.
func (fr *FileReader) readName(first bool) (string, bool, error) {
	var lb [4]byte
	if _, err := io.ReadFull(fr.c.r, lb[:]); err != nil {
		return "", false, unexpected(err)
	}
	n := binary.BigEndian.Uint32(lb[:])
	if n == 0 {
		if first {
			return "", true, nil
		}
		return "", false, fmt.Errorf("%w: %s stream: empty file name", ErrProtocol, fr.dir)
	}
	if n > MaxName {
		return "", false, fmt.Errorf("%w: %s stream: name of %d bytes (limit %d)", ErrProtocol, fr.dir, n, MaxName)
	}
	if cap(fr.nameBuf) < int(n) {
		fr.nameBuf = make([]byte, MaxName)
	}
	b := fr.nameBuf[:n]
	if _, err := io.ReadFull(fr.c.r, b); err != nil {
		return "", false, unexpected(err)
	}
	return string(b), false, nil
}

// Read reads content of the current file. At its end Read returns io.EOF,
// or a *RemoteFileError when the peer sent an error block instead.
func (fr *FileReader) Read(p []byte) (int, error) {
	if fr.err != nil {
		return 0, fr.err
	}
	if !fr.inFile {
		return 0, errors.New("devicelink: Read outside a file; call Next first")
	}
	for fr.remaining == 0 {
		if fr.fileErr != nil {
			return 0, fr.fileErr
		}
		if err := fr.readBlockHeader(); err != nil {
			return 0, fr.fail(err)
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if uint32(len(p)) > fr.remaining {
		p = p[:fr.remaining]
	}
	n, err := fr.c.r.Read(p)
	fr.remaining -= uint32(n)
	if err != nil {
		return n, fr.fail(unexpected(err))
	}
	return n, nil
}

// readBlockHeader reads the next block header of the current file and
// handles non-data blocks entirely.
func (fr *FileReader) readBlockHeader() error {
	// The length comes first on its own: a zero length has no code byte.
	if _, err := io.ReadFull(fr.c.r, fr.headerBuf[:4]); err != nil {
		return unexpected(err)
	}
	n := binary.BigEndian.Uint32(fr.headerBuf[:4])
	if n == 0 {
		return fmt.Errorf("%w: %s stream: zero-length block", ErrProtocol, fr.dir)
	}
	if _, err := io.ReadFull(fr.c.r, fr.headerBuf[4:]); err != nil {
		return unexpected(err)
	}
	code := fr.headerBuf[4]
	switch code {
	case CodeFileData:
		if n-1 > fr.c.maxBlock() {
			return fmt.Errorf("%w: %s stream: block of %d bytes (limit %d)", ErrProtocol, fr.dir, n-1, fr.c.maxBlock())
		}
		if n == 1 {
			// Empty blocks carry nothing; a run of them is a peer keeping
			// Read busy without progress a caller could see.
			fr.empties++
			if fr.empties > maxEmptyBlocks {
				return fmt.Errorf("%w: %s stream: more than %d empty blocks in a row", ErrProtocol, fr.dir, maxEmptyBlocks)
			}
		} else {
			fr.empties = 0
		}
		fr.remaining = n - 1
		fr.sawData = true
		return nil
	case CodeEndOfFile:
		if n != 1 {
			return fmt.Errorf("%w: %s stream: end-of-file block of length %d", ErrProtocol, fr.dir, n)
		}
		fr.fileErr = io.EOF
		return nil
	case fr.dir.errCode():
		if n-1 > maxErrorMessage {
			return fmt.Errorf("%w: %s stream: error message of %d bytes", ErrProtocol, fr.dir, n-1)
		}
		msg := make([]byte, n-1)
		if _, err := io.ReadFull(fr.c.r, msg); err != nil {
			return unexpected(err)
		}
		fr.fileErr = &RemoteFileError{Message: string(msg), AfterData: fr.sawData}
		return nil
	}
	return fmt.Errorf("%w: %s stream: unknown block code 0x%02x", ErrProtocol, fr.dir, code)
}

// skipRest discards what is left of the current file.
func (fr *FileReader) skipRest() error {
	if fr.skipBuf == nil {
		fr.skipBuf = make([]byte, 32<<10)
	}
	for {
		_, err := fr.Read(fr.skipBuf)
		if err == nil {
			continue
		}
		var rfe *RemoteFileError
		if err == io.EOF || errors.As(err, &rfe) {
			fr.inFile = false
			return nil
		}
		return err
	}
}

// WriteTo copies the rest of the current file to w. It returns the file's
// terminating condition like Read, except that a clean end returns nil.
func (fr *FileReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if fr.err != nil {
			return total, fr.err
		}
		if !fr.inFile {
			return total, errors.New("devicelink: WriteTo outside a file; call Next first")
		}
		if fr.remaining == 0 {
			if fr.fileErr != nil {
				if fr.fileErr == io.EOF {
					return total, nil
				}
				return total, fr.fileErr
			}
			if err := fr.readBlockHeader(); err != nil {
				return total, fr.fail(err)
			}
			continue
		}
		n, err := io.CopyN(w, fr.c.r, int64(fr.remaining))
		total += n
		fr.remaining -= uint32(n)
		if err != nil {
			if fr.remaining > 0 && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF)) {
				return total, fr.fail(io.ErrUnexpectedEOF)
			}
			return total, err
		}
	}
}

func (fr *FileReader) fail(err error) error {
	fr.err = err
	return err
}

// unexpected turns a clean EOF inside a stream into io.ErrUnexpectedEOF:
// the stream only ends at its terminator.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// FileWriter writes a file stream. Small files and headers are gathered in
// one buffer so that a stream of many small files costs few writes; large
// content is read straight into that buffer behind its block header, so it
// is copied once. Call Finish before the next message.
type FileWriter struct {
	w         io.Writer
	dir       Direction
	blockSize int
	buf       []byte
	inFile    bool
	err       error
}

// NewFileWriter starts writing a file stream in direction d with blocks of
// at most blockSize content bytes (zero means DefaultBlockSize).
func (c *Conn) NewFileWriter(d Direction, blockSize int) *FileWriter {
	if blockSize <= 0 {
		blockSize = DefaultBlockSize
	}
	// Room for a full block plus the headers of the next file, so a block
	// read never has to be split.
	return &FileWriter{
		w:         c.w,
		dir:       d,
		blockSize: blockSize,
		buf:       make([]byte, 0, blockSize+5+2*(4+MaxName)+64),
	}
}

// Begin starts a file. deviceName is ignored for downloads. Names longer
// than MaxName are refused; use WriteRaw to send hostile names on purpose.
func (fw *FileWriter) Begin(deviceName, path string) error {
	if fw.err != nil {
		return fw.err
	}
	if fw.inFile {
		return errors.New("devicelink: Begin inside a file")
	}
	names := []string{path}
	if fw.dir == Upload {
		names = []string{deviceName, path}
	}
	for _, n := range names {
		if len(n) == 0 || len(n) > MaxName {
			return fmt.Errorf("devicelink: file name of %d bytes (1..%d allowed)", len(n), MaxName)
		}
	}
	for _, n := range names {
		if err := fw.reserve(4 + len(n)); err != nil {
			return err
		}
		fw.buf = binary.BigEndian.AppendUint32(fw.buf, uint32(len(n)))
		fw.buf = append(fw.buf, n...)
	}
	fw.inFile = true
	return nil
}

// ReadFrom sends everything r yields as content of the current file.
func (fw *FileWriter) ReadFrom(r io.Reader) (int64, error) {
	if fw.err != nil {
		return 0, fw.err
	}
	if !fw.inFile {
		return 0, errors.New("devicelink: content outside a file; call Begin first")
	}
	var total int64
	for {
		if err := fw.reserve(5 + fw.blockSize); err != nil {
			return total, err
		}
		hdr := len(fw.buf)
		body := fw.buf[hdr+5 : hdr+5+fw.blockSize]
		n, rerr := io.ReadFull(r, body)
		if n > 0 {
			fw.buf = fw.buf[:hdr+5+n]
			binary.BigEndian.PutUint32(fw.buf[hdr:], uint32(n+1))
			fw.buf[hdr+4] = CodeFileData
			total += int64(n)
		}
		switch {
		case rerr == nil:
			continue
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return total, nil
		default:
			return total, rerr
		}
	}
}

// Write sends p as content of the current file, in blocks of at most the
// block size.
func (fw *FileWriter) Write(p []byte) (int, error) {
	if fw.err != nil {
		return 0, fw.err
	}
	if !fw.inFile {
		return 0, errors.New("devicelink: content outside a file; call Begin first")
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), fw.blockSize)
		if err := fw.reserve(5 + n); err != nil {
			return written, err
		}
		fw.buf = binary.BigEndian.AppendUint32(fw.buf, uint32(n+1))
		fw.buf = append(fw.buf, CodeFileData)
		fw.buf = append(fw.buf, p[:n]...)
		p = p[n:]
		written += n
	}
	return written, nil
}

// End finishes the current file with an end-of-file block.
func (fw *FileWriter) End() error {
	if fw.err != nil {
		return fw.err
	}
	if !fw.inFile {
		return errors.New("devicelink: End outside a file")
	}
	if err := fw.reserve(5); err != nil {
		return err
	}
	fw.buf = append(fw.buf, 0, 0, 0, 1, CodeEndOfFile)
	fw.inFile = false
	return nil
}

// Fail ends the current file with an error block carrying msg instead of
// an end-of-file block.
func (fw *FileWriter) Fail(msg string) error {
	if fw.err != nil {
		return fw.err
	}
	if !fw.inFile {
		return errors.New("devicelink: Fail outside a file")
	}
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	if err := fw.reserve(5 + len(msg)); err != nil {
		return err
	}
	fw.buf = binary.BigEndian.AppendUint32(fw.buf, uint32(len(msg)+1))
	fw.buf = append(fw.buf, fw.dir.errCode())
	fw.buf = append(fw.buf, msg...)
	fw.inFile = false
	return nil
}

// SendFile sends one whole file: header, content from r, end of file.
func (fw *FileWriter) SendFile(deviceName, path string, r io.Reader) (int64, error) {
	if err := fw.Begin(deviceName, path); err != nil {
		return 0, err
	}
	n, err := fw.ReadFrom(r)
	if err != nil {
		return n, err
	}
	return n, fw.End()
}

// Finish ends the stream with a zero length and flushes. The connection
// then carries messages again.
func (fw *FileWriter) Finish() error {
	if fw.err != nil {
		return fw.err
	}
	if fw.inFile {
		return errors.New("devicelink: Finish inside a file")
	}
	if err := fw.reserve(4); err != nil {
		return err
	}
	fw.buf = append(fw.buf, 0, 0, 0, 0)
	return fw.Flush()
}

// WriteRaw queues arbitrary bytes in the stream. It exists for simulating
// hostile peers and for tests; it bypasses all framing checks.
func (fw *FileWriter) WriteRaw(p []byte) error {
	if fw.err != nil {
		return fw.err
	}
	if err := fw.Flush(); err != nil {
		return err
	}
	if _, err := fw.w.Write(p); err != nil {
		fw.err = err
		return err
	}
	return nil
}

// Flush writes out everything buffered.
func (fw *FileWriter) Flush() error {
	if fw.err != nil {
		return fw.err
	}
	if len(fw.buf) == 0 {
		return nil
	}
	_, err := fw.w.Write(fw.buf)
	fw.buf = fw.buf[:0]
	if err != nil {
		fw.err = err
	}
	return err
}

// reserve flushes when fewer than n bytes are free in the buffer.
func (fw *FileWriter) reserve(n int) error {
	if cap(fw.buf)-len(fw.buf) >= n {
		return nil
	}
	return fw.Flush()
}
