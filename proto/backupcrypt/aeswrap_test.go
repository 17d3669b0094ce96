package backupcrypt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyWrapRFC3394 checks Wrap and Unwrap against the test vectors of
// RFC 3394 section 4.
func TestKeyWrapRFC3394(t *testing.T) {
	const (
		kek128 = "000102030405060708090A0B0C0D0E0F"
		kek192 = "000102030405060708090A0B0C0D0E0F1011121314151617"
		kek256 = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F"
		key128 = "00112233445566778899AABBCCDDEEFF"
		key192 = "00112233445566778899AABBCCDDEEFF0001020304050607"
		key256 = "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F"
	)
	vectors := []struct{ name, kek, key, wrapped string }{
		{"4.1 128-bit key, 128-bit KEK", kek128, key128, "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		{"4.2 128-bit key, 192-bit KEK", kek192, key128, "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"},
		{"4.3 128-bit key, 256-bit KEK", kek256, key128, "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"},
		{"4.4 192-bit key, 192-bit KEK", kek192, key192, "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"},
		{"4.5 192-bit key, 256-bit KEK", kek256, key192, "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1"},
		{"4.6 256-bit key, 256-bit KEK", kek256, key256, "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
	}
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			kek, key, wrapped := unhex(t, v.kek), unhex(t, v.key), unhex(t, v.wrapped)
			got, err := Wrap(kek, key)
			if err != nil || !bytes.Equal(got, wrapped) {
				t.Fatalf("Wrap = %X, %v; want %X", got, err, wrapped)
			}
			plain, err := Unwrap(kek, wrapped)
			if err != nil || !bytes.Equal(plain, key) {
				t.Fatalf("Unwrap = %X, %v; want %X", plain, err, key)
			}
			// Any flipped bit, or the wrong KEK, fails the integrity check.
			for i := range wrapped {
				bad := bytes.Clone(wrapped)
				bad[i] ^= 0x10
				if _, err := Unwrap(kek, bad); !errors.Is(err, ErrIntegrity) {
					t.Fatalf("byte %d flipped: Unwrap err %v", i, err)
				}
			}
			wrongKEK := bytes.Clone(kek)
			wrongKEK[0] ^= 1
			if _, err := Unwrap(wrongKEK, wrapped); !errors.Is(err, ErrIntegrity) {
				t.Fatalf("wrong KEK: Unwrap err %v", err)
			}
		})
	}
}

func TestKeyWrapRejectsBadLengths(t *testing.T) {
	kek := make([]byte, 32)
	for _, n := range []int{0, 8, 15, 17} {
		if _, err := Wrap(kek, make([]byte, n)); err == nil {
			t.Errorf("Wrap of %d bytes: no error", n)
		}
	}
	for _, n := range []int{0, 16, 25, 41} {
		if _, err := Unwrap(kek, make([]byte, n)); err == nil || errors.Is(err, ErrIntegrity) {
			t.Errorf("Unwrap of %d bytes: err %v, want a length error", n, err)
		}
	}
	if _, err := Unwrap(make([]byte, 7), make([]byte, 40)); err == nil {
		t.Error("Unwrap with a 7-byte KEK: no error")
	}
}
