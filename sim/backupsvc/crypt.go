package backupsvc

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/backupd/backupd/proto/backupcrypt"
)

// Protection classes the simulated device uses: its files are
// NSFileProtectionCompleteUntilFirstUserAuthentication (3), as most of an
// iPhone's are, and Manifest.db's key is wrapped with class 4, as real
// ManifestKeys are.
const (
	fileClass     = 3
	manifestClass = 4
)

// TestParams are the keybag's round counts unless SetParams says
// otherwise: small, so that tests run fast. backupcrypt.DeviceParams are
// what iPhones use.
var TestParams = backupcrypt.Params{DPIC: 1000, Iter: 100}

// deviceKeys are what a real iPhone keeps in its Secure Enclave and data
// protection metadata: class keys, which never change, and a secret from
// which each file's key follows, so that a file keeps its key until its
// content changes (an incremental backup relies on it: the host keeps the
// old ciphertext and the new Manifest.db must still open it).
type deviceKeys struct {
	classes *backupcrypt.ClassKeys
	secret  [32]byte
	// keybag is the keybag sealed with sealedFor and params.
	keybag    []byte
	sealedFor string
	params    backupcrypt.Params
}

// SetParams sets the keybag's round counts; the next encrypted backup
// seals the keybag with them.
func (e *Encryption) SetParams(p backupcrypt.Params) {
	e.mu.Lock()
	e.params = p
	e.mu.Unlock()
}

// backupKeys returns the device's keys and its keybag sealed with the
// current password, sealing it when the password or the round counts
// changed since (which takes seconds with a device's round counts).
func (e *Encryption) backupKeys(ctx context.Context) (*deviceKeys, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.keys == nil {
		ck, err := backupcrypt.NewClassKeys(rand.Reader)
		if err != nil {
			return nil, err
		}
		e.keys = &deviceKeys{classes: ck}
		rand.Read(e.keys.secret[:])
	}
	k := e.keys
	if k.keybag == nil || k.sealedFor != e.password || k.params != e.params {
		kb, err := k.classes.Seal(ctx, []byte(e.password), e.params, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("backupsvc: seal the keybag: %w", err)
		}
		k.keybag, k.sealedFor, k.params = kb.Marshal(), e.password, e.params
	}
	return k, nil
}

// fileKey is the key of one generation of a file's content.
func (k *deviceKeys) fileKey(fileID string, generation uint64) []byte {
	m := hmac.New(sha256.New, k.secret[:])
	m.Write([]byte(fileID))
	m.Write(binary.BigEndian.AppendUint64(nil, generation))
	return m.Sum(nil)
}

// storedFileKey is a file's EncryptionKey as its MBFile record holds it.
func (k *deviceKeys) storedFileKey(fileID string, generation uint64) ([]byte, error) {
	return k.classes.Wrap(fileClass, k.fileKey(fileID, generation))
}

// encryptFile encrypts the plain file at path into a new temporary file in
// dir with a new random key, and returns its path and the ManifestKey
// (class and wrapped key) that opens it.
func (k *deviceKeys) encryptFile(dir, path string) (string, []byte, error) {
	key := make([]byte, 32)
	rand.Read(key)
	stored, err := k.classes.Wrap(manifestClass, key)
	if err != nil {
		return "", nil, err
	}
	out, err := transformFile(dir, path, func(r io.Reader) (io.Reader, error) { return backupcrypt.NewEncrypter(r, key) })
	return out, stored, err
}

// decryptFile decrypts the host's Manifest.db at path with its
// ManifestKey into a new temporary file in dir, and returns its path.
func (k *deviceKeys) decryptFile(dir, path string, manifestKey []byte) (string, error) {
	key, err := k.classes.Unwrap(manifestKey)
	if err != nil {
		return "", err
	}
	return transformFile(dir, path, func(r io.Reader) (io.Reader, error) { return backupcrypt.NewDecrypter(r, key, -1) })
}

// transformFile writes what wrap makes of the file at path into a new
// temporary file in dir.
func transformFile(dir, path string, wrap func(io.Reader) (io.Reader, error)) (_ string, err error) {
	in, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer in.Close()
	r, err := wrap(in)
	if err != nil {
		return "", err
	}
	out, err := os.CreateTemp(dir, "backupsvc-crypt-*.db")
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(out.Name())
		}
	}()
	if _, err := io.Copy(out, r); err != nil {
		return "", err
	}
	return out.Name(), nil
}

// plainSum decrypts an encrypted file as it arrives, as a phone does
// when it restores one, and writes the plain content to w:
// AES-256-CBC with a zero IV and PKCS#7 padding. The last block waits
// until finish, since only it holds the padding.
type plainSum struct {
	cbc  cipher.BlockMode
	w    io.Writer
	held []byte // ciphertext not yet decrypted
	n    int64  // plain bytes written
}

func newPlainSum(key []byte, w io.Writer) (*plainSum, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return &plainSum{cbc: cipher.NewCBCDecrypter(b, make([]byte, aes.BlockSize)), w: w}, nil
}

// Write decrypts every whole block but the last one seen.
func (p *plainSum) Write(b []byte) {
	p.held = append(p.held, b...)
	keep := len(p.held) % aes.BlockSize
	if keep == 0 {
		keep = aes.BlockSize
	}
	n := len(p.held) - keep
	if n <= 0 {
		return
	}
	out := make([]byte, n)
	p.cbc.CryptBlocks(out, p.held[:n])
	p.w.Write(out)
	p.n += int64(n)
	p.held = append(p.held[:0], p.held[n:]...)
}

// finish decrypts the last block and writes it without its padding;
// false when the content is not whole.
func (p *plainSum) finish() bool {
	if len(p.held) != aes.BlockSize {
		return false
	}
	last := make([]byte, aes.BlockSize)
	p.cbc.CryptBlocks(last, p.held)
	pad := int(last[aes.BlockSize-1])
	if pad < 1 || pad > aes.BlockSize || !bytes.Equal(last[aes.BlockSize-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return false
	}
	p.w.Write(last[:aes.BlockSize-pad])
	p.n += int64(aes.BlockSize - pad)
	return true
}
