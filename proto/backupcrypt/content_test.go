package backupcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func key32() []byte { return bytes.Repeat([]byte{0x42}, 32) }

// reference encrypts with the standard library in one go, as a check on
// the streaming Encrypter.
func reference(t testing.TB, plain, key []byte) []byte {
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	pad := 16 - len(plain)%16
	buf := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, make([]byte, 16)).CryptBlocks(buf, buf)
	return buf
}

func TestContentRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 15, 16, 17, 31, 32, chunk - 1, chunk, chunk + 1, 3*chunk + 5}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	for _, n := range sizes {
		plain := make([]byte, n)
		rand.Read(plain)
		want := reference(t, plain, key32())
		for rname, wrap := range readers {
			if rname == "one byte" && n > 4096 {
				continue
			}
			enc, err := NewEncrypter(wrap(bytes.NewReader(plain)), key32())
			if err != nil {
				t.Fatal(err)
			}
			ct, err := io.ReadAll(enc)
			if err != nil || !bytes.Equal(ct, want) {
				t.Fatalf("size %d, %s: ciphertext differs from the reference (%d vs %d bytes, %v)", n, rname, len(ct), len(want), err)
			}
			if int64(len(ct)) != EncryptedSize(int64(n)) {
				t.Fatalf("size %d: EncryptedSize %d, got %d", n, EncryptedSize(int64(n)), len(ct))
			}
			dec, err := NewDecrypter(wrap(bytes.NewReader(ct)), key32(), int64(n))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(dec)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("size %d, %s: decrypted differs (%d bytes, %v)", n, rname, len(got), err)
			}
			size, err := PlainSize(bytes.NewReader(ct), int64(len(ct)), key32())
			if err != nil || size != int64(n) {
				t.Fatalf("size %d: PlainSize %d, %v", n, size, err)
			}
		}
	}
}

func TestDecrypterDetectsDamage(t *testing.T) {
	// Fixed content, so that the damaged block's padding is the same on
	// every run.
	plain := bytes.Repeat([]byte("0123456789"), 100)
	ct := reference(t, plain, key32())
	flipLast := bytes.Clone(ct)
	flipLast[len(flipLast)-1] ^= 0xFF
	cases := map[string]struct {
		ct   []byte
		size int64
	}{
		"truncated by a block":      {ct[:len(ct)-16], 1000},
		"truncated mid-block":       {ct[:len(ct)-5], 1000},
		"empty":                     {nil, 1000},
		"last block damaged":        {flipLast, 1000},
		"recorded size larger":      {ct, 1001},
		"recorded size smaller":     {ct, 999},
		"recorded size far smaller": {ct, 10},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dec, err := NewDecrypter(bytes.NewReader(c.ct), key32(), c.size)
			if err != nil {
				t.Fatal(err)
			}
			_, err = io.Copy(io.Discard, dec)
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("err %v, want ErrDamaged", err)
			}
		})
	}
	if _, err := PlainSize(bytes.NewReader(flipLast), int64(len(flipLast)), key32()); !errors.Is(err, ErrDamaged) {
		t.Fatalf("PlainSize of a damaged last block: %v", err)
	}
	if _, err := PlainSize(bytes.NewReader(ct), int64(len(ct)-5), key32()); !errors.Is(err, ErrDamaged) {
		t.Fatalf("PlainSize of a partial block: %v", err)
	}
}

func TestDecrypterPassesReadErrors(t *testing.T) {
	boom := errors.New("disk")
	dec, _ := NewDecrypter(iotest.ErrReader(boom), key32(), 1)
	if _, err := io.ReadAll(dec); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}
