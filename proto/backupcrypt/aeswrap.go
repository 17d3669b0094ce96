package backupcrypt

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// wrapIV is RFC 3394's default initial value, the integrity check of an
// unwrap.
var wrapIV = [8]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// ErrIntegrity means an AES key unwrap did not yield RFC 3394's integrity
// value: the key-encryption key is wrong, or the wrapped key is damaged.
var ErrIntegrity = errors.New("backupcrypt: AES key unwrap integrity check failed")

// Wrap wraps plain (a multiple of 8 bytes, at least 16) with kek, as RFC
// 3394 section 2.2.1 describes.
func Wrap(kek, plain []byte) ([]byte, error) {
	if len(plain) < 16 || len(plain)%8 != 0 {
		return nil, fmt.Errorf("backupcrypt: key to wrap is %d bytes, not a multiple of 8 of at least 16", len(plain))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("backupcrypt: key-encryption key: %w", err)
	}
	n := len(plain) / 8
	out := make([]byte, 8+len(plain))
	copy(out, wrapIV[:])
	copy(out[8:], plain)
	var b [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(b[:8], out[:8])
			copy(b[8:], out[8*i:8*i+8])
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(out[:8], binary.BigEndian.Uint64(b[:8])^t)
			copy(out[8*i:], b[8:])
		}
	}
	return out, nil
}

// Unwrap reverses Wrap (RFC 3394 section 2.2.2) and checks the integrity
// value; a mismatch is ErrIntegrity.
func Unwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, fmt.Errorf("backupcrypt: wrapped key is %d bytes, not a multiple of 8 of at least 24", len(wrapped))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("backupcrypt: key-encryption key: %w", err)
	}
	n := len(wrapped)/8 - 1
	r := make([]byte, len(wrapped))
	copy(r, wrapped)
	var b [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(r[:8])^t)
			copy(b[8:], r[8*i:8*i+8])
			block.Decrypt(b[:], b[:])
			copy(r[:8], b[:8])
			copy(r[8*i:], b[8:])
		}
	}
	if subtle.ConstantTimeCompare(r[:8], wrapIV[:]) != 1 {
		clear(r)
		return nil, ErrIntegrity
	}
	return r[8:], nil
}
