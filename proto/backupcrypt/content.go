package backupcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
)

// ErrDamaged is wrapped when encrypted content cannot be right: its length
// is not whole AES blocks, its padding is not PKCS#7, or its plain length
// is not the one recorded. A truncated file is one of these.
var ErrDamaged = errors.New("backupcrypt: damaged or truncated encrypted content")

// chunk is how much ciphertext a reader decrypts at a time.
const chunk = 64 << 10

// EncryptedSize is the length of n plain bytes once encrypted: PKCS#7
// always adds 1 to 16 bytes.
func EncryptedSize(n int64) int64 { return (n/aes.BlockSize + 1) * aes.BlockSize }

func newCBC(key []byte, decrypt bool) (cipher.BlockMode, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("backupcrypt: content key is %d bytes, not 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	var iv [aes.BlockSize]byte // backups use a zero IV
	if decrypt {
		return cipher.NewCBCDecrypter(block, iv[:]), nil
	}
	return cipher.NewCBCEncrypter(block, iv[:]), nil
}

// Decrypter reads AES-256-CBC content (zero IV, PKCS#7) as plain bytes,
// a chunk at a time. It checks, at the end, that the padding is valid and
// that the plain length is the expected one; errors wrap ErrDamaged.
type Decrypter struct {
	src  io.Reader
	cbc  cipher.BlockMode
	want int64 // expected plain length; -1 for any

	ct    []byte // ciphertext read but not decrypted (less than a block between steps)
	ctLen int
	plain []byte
	out   []byte // plaintext ready to return
	held  [aes.BlockSize]byte
	have  bool // held is the last decrypted block, not yet returned
	n     int64
	done  bool
	err   error
}

// NewDecrypter decrypts src with key. size is the plain length the
// content must have (Size in its MBFile record), or -1 if unknown.
func NewDecrypter(src io.Reader, key []byte, size int64) (*Decrypter, error) {
	cbc, err := newCBC(key, true)
	if err != nil {
		return nil, err
	}
	return &Decrypter{src: src, cbc: cbc, want: size,
		ct: make([]byte, chunk), plain: make([]byte, chunk+aes.BlockSize)}, nil
}

// Read implements io.Reader.
func (d *Decrypter) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.done {
			return 0, io.EOF
		}
		d.err = d.step()
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

// step reads more ciphertext and decrypts the whole blocks, holding the
// last one back: only at the end is it known to carry the padding.
func (d *Decrypter) step() error {
	n, err := d.src.Read(d.ct[d.ctLen:])
	d.ctLen += n
	if err == io.EOF {
		return d.finish()
	}
	if err != nil {
		return err
	}
	whole := d.ctLen &^ (aes.BlockSize - 1)
	if whole == 0 {
		return nil
	}
	buf := d.plain[:0]
	if d.have {
		buf = append(buf, d.held[:]...)
	}
	start := len(buf)
	buf = buf[:start+whole]
	d.cbc.CryptBlocks(buf[start:], d.ct[:whole])
	d.ctLen = copy(d.ct, d.ct[whole:d.ctLen])
	last := len(buf) - aes.BlockSize
	copy(d.held[:], buf[last:])
	d.have = true
	d.out = buf[:last]
	d.n += int64(last)
	if d.want >= 0 && d.n > d.want {
		return fmt.Errorf("%w: longer than the %d bytes recorded", ErrDamaged, d.want)
	}
	return nil
}

func (d *Decrypter) finish() error {
	if d.ctLen != 0 {
		return fmt.Errorf("%w: %d bytes past the last whole AES block", ErrDamaged, d.ctLen)
	}
	if !d.have {
		return fmt.Errorf("%w: no encrypted content", ErrDamaged)
	}
	pad, err := padding(d.held[:])
	if err != nil {
		return err
	}
	d.out = d.held[:aes.BlockSize-pad]
	d.n += int64(len(d.out))
	if d.want >= 0 && d.n != d.want {
		return fmt.Errorf("%w: %d bytes, %d recorded", ErrDamaged, d.n, d.want)
	}
	d.done = true
	return nil
}

// padding checks PKCS#7 padding in the last plain block.
func padding(last []byte) (int, error) {
	pad := int(last[len(last)-1])
	if pad == 0 || pad > aes.BlockSize {
		return 0, fmt.Errorf("%w: invalid padding", ErrDamaged)
	}
	for _, b := range last[len(last)-pad:] {
		if int(b) != pad {
			return 0, fmt.Errorf("%w: invalid padding", ErrDamaged)
		}
	}
	return pad, nil
}

// PlainSize tells the plain length of size bytes of encrypted content
// from its last two blocks, without decrypting the rest: CBC lets the
// last block be decrypted alone, and its padding gives the length.
func PlainSize(r io.ReaderAt, size int64, key []byte) (int64, error) {
	if size <= 0 || size%aes.BlockSize != 0 {
		return 0, fmt.Errorf("%w: %d bytes is not whole AES blocks", ErrDamaged, size)
	}
	if len(key) != 32 {
		return 0, fmt.Errorf("backupcrypt: content key is %d bytes, not 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return 0, err
	}
	var tail [2 * aes.BlockSize]byte // previous block (the IV for the first) and last block
	off, buf := size-2*aes.BlockSize, tail[:]
	if size == aes.BlockSize {
		off, buf = 0, tail[aes.BlockSize:]
	}
	if _, err := r.ReadAt(buf, off); err != nil {
		return 0, err
	}
	var last [aes.BlockSize]byte
	block.Decrypt(last[:], tail[aes.BlockSize:])
	for i := range last {
		last[i] ^= tail[i]
	}
	pad, err := padding(last[:])
	if err != nil {
		return 0, err
	}
	return size - int64(pad), nil
}

// Encrypter reads plain content as AES-256-CBC ciphertext (zero IV,
// PKCS#7), a chunk at a time: what an iPhone sends for each file of an
// encrypted backup.
type Encrypter struct {
	src   io.Reader
	cbc   cipher.BlockMode
	buf   []byte // plain bytes not yet encrypted: buf[:n]
	n     int
	ctBuf []byte
	out   []byte
	done  bool
}

// NewEncrypter encrypts src with key.
func NewEncrypter(src io.Reader, key []byte) (*Encrypter, error) {
	cbc, err := newCBC(key, false)
	if err != nil {
		return nil, err
	}
	return &Encrypter{src: src, cbc: cbc, buf: make([]byte, chunk+aes.BlockSize), ctBuf: make([]byte, chunk+aes.BlockSize)}, nil
}

// Read implements io.Reader.
func (e *Encrypter) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.done {
			return 0, io.EOF
		}
		if err := e.step(); err != nil {
			return 0, err
		}
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

func (e *Encrypter) step() error {
	m, err := e.src.Read(e.buf[e.n:chunk])
	e.n += m
	if err == io.EOF {
		pad := aes.BlockSize - e.n%aes.BlockSize
		for i := 0; i < pad; i++ {
			e.buf[e.n+i] = byte(pad)
		}
		e.n += pad
		e.cbc.CryptBlocks(e.ctBuf[:e.n], e.buf[:e.n])
		e.out, e.n, e.done = e.ctBuf[:e.n], 0, true
		return nil
	}
	if err != nil {
		return err
	}
	whole := e.n &^ (aes.BlockSize - 1)
	if whole == 0 {
		return nil
	}
	// Read drains out before the next step reuses ctBuf.
	e.cbc.CryptBlocks(e.ctBuf[:whole], e.buf[:whole])
	e.out = e.ctBuf[:whole]
	e.n = copy(e.buf, e.buf[whole:e.n])
	return nil
}
