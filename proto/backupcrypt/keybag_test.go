package backupcrypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// fast are round counts that keep tests quick.
var fast = Params{DPIC: 10, Iter: 10}

func sealed(t testing.TB, password string, p Params) (*ClassKeys, *Keybag) {
	t.Helper()
	ck, err := NewClassKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := ck.Seal(context.Background(), []byte(password), p, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return ck, kb
}

// TestDeriveKeyKnownAnswer checks the two PBKDF2 steps against values
// computed independently (Python's hashlib.pbkdf2_hmac).
func TestDeriveKeyKnownAnswer(t *testing.T) {
	cases := []struct {
		name string
		kb   Keybag
		want string
	}{
		{"iOS 10.2 and later: SHA-256 then SHA-1",
			Keybag{Salt: []byte("salt-0123456789abcde"), Iter: 100, DPSL: []byte("dpsl-salt-0123456789"), DPIC: 1000},
			"fcadbcb6048431bc5e771df255e3808491da82477515dcc67fc1c740de949fe4"},
		{"before iOS 10.2: SHA-1 only",
			Keybag{Salt: []byte("salt-0123456789abcde"), Iter: 100},
			"bac19957a39112ec4c7fc6ceb61b3290b669516d4099f0263cd7ea5f07f4568f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key, err := c.kb.DeriveKey(context.Background(), []byte("pässword"))
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(key); got != c.want {
				t.Fatalf("key %s, want %s", got, c.want)
			}
		})
	}
}

func TestKeybagSealParseUnlock(t *testing.T) {
	for name, p := range map[string]Params{"iOS 10.2+": fast, "legacy": {Iter: 10}} {
		t.Run(name, func(t *testing.T) {
			ck, kb := sealed(t, "secret", p)
			parsed, err := ParseKeybag(kb.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(parsed, kb) {
				t.Fatalf("parsed keybag differs:\n got %+v\nwant %+v", parsed, kb)
			}
			if len(parsed.Classes) != 10 || parsed.Type != KeybagTypeBackup {
				t.Fatalf("%d classes, type %d", len(parsed.Classes), parsed.Type)
			}
			unlocked, err := parsed.Unlock(context.Background(), []byte("secret"))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(unlocked.keys, ck.keys) {
				t.Fatal("unlocked class keys differ from the sealed ones")
			}
			// A key wrapped by one side unwraps on the other.
			fileKey := bytes.Repeat([]byte{7}, 32)
			stored, err := ck.Wrap(3, fileKey)
			if err != nil {
				t.Fatal(err)
			}
			if binary.LittleEndian.Uint32(stored) != 3 || len(stored) != 44 {
				t.Fatalf("stored key %x", stored)
			}
			got, err := unlocked.Unwrap(stored)
			if err != nil || !bytes.Equal(got, fileKey) {
				t.Fatalf("Unwrap = %x, %v", got, err)
			}
			if _, err := parsed.Unlock(context.Background(), []byte("Secret")); !errors.Is(err, ErrWrongPassword) {
				t.Fatalf("wrong password: %v", err)
			}
		})
	}
}

func TestClassKeysUnwrapErrors(t *testing.T) {
	ck, _ := sealed(t, "x", fast)
	good, _ := ck.Wrap(3, make([]byte, 32))
	other, _ := NewClassKeys(rand.Reader)
	noClass := append([]byte{5, 0, 0, 0}, good[4:]...)
	cases := map[string]struct {
		keys *ClassKeys
		in   []byte
	}{
		"short":           {ck, good[:43]},
		"unknown class":   {ck, noClass},
		"other device":    {other, good},
		"damaged wrapped": {ck, append(bytes.Clone(good[:43]), good[43]^1)},
	}
	for name, c := range cases {
		if _, err := c.keys.Unwrap(c.in); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDeriveKeyHonoursContext(t *testing.T) {
	kb := Keybag{Salt: []byte("s"), Iter: 1, DPSL: []byte("d"), DPIC: MaxRounds}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := kb.DeriveKey(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func tlv(tag string, val []byte) []byte {
	b := append([]byte(tag), binary.BigEndian.AppendUint32(nil, uint32(len(val)))...)
	return append(b, val...)
}

func u32(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

func TestParseKeybagRejects(t *testing.T) {
	head := append(tlv("VERS", u32(4)), tlv("UUID", make([]byte, 16))...)
	class := func(c uint32) []byte {
		b := tlv("UUID", make([]byte, 16))
		b = append(b, tlv("CLAS", u32(c))...)
		return append(b, tlv("WPKY", make([]byte, 40))...)
	}
	cases := map[string][]byte{
		"no UUID":            tlv("VERS", u32(4)),
		"trailing bytes":     append(bytes.Clone(head), 1, 2, 3),
		"length overruns":    append(bytes.Clone(head), append([]byte("SALT"), 0, 0, 1, 0)...),
		"huge length":        append(bytes.Clone(head), append([]byte("SALT"), 0xFF, 0xFF, 0xFF, 0xFF)...),
		"integer of 3 bytes": append(bytes.Clone(head), tlv("ITER", []byte{0, 0, 1})...),
		"class twice":        append(append(bytes.Clone(head), class(3)...), class(3)...),
		"too large":          append(bytes.Clone(head), tlv("JUNK", make([]byte, MaxKeybag))...),
	}
	for name, b := range cases {
		if _, err := ParseKeybag(b); !errors.Is(err, ErrMalformedKeybag) {
			t.Errorf("%s: err %v, want ErrMalformedKeybag", name, err)
		}
	}
	many := bytes.Clone(head)
	for c := uint32(0); c <= maxClasses; c++ {
		many = append(many, class(c)...)
	}
	if _, err := ParseKeybag(many); !errors.Is(err, ErrMalformedKeybag) {
		t.Errorf("too many classes: %v", err)
	}
}

func TestUnlockRejectsUnusableKeybags(t *testing.T) {
	cases := map[string]Keybag{
		"no salt":           {UUID: []byte{1}, Iter: 1},
		"zero ITER":         {UUID: []byte{1}, Salt: []byte{1}},
		"ITER over limit":   {UUID: []byte{1}, Salt: []byte{1}, Iter: MaxRounds + 1},
		"DPSL without DPIC": {UUID: []byte{1}, Salt: []byte{1}, Iter: 1, DPSL: []byte{1}},
		"no class keys":     {UUID: []byte{1}, Salt: []byte{1}, Iter: 1},
	}
	for name, kb := range cases {
		if _, err := kb.Unlock(context.Background(), []byte("x")); !errors.Is(err, ErrMalformedKeybag) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

// TestParseKeybagSkipsUnknownTags: a class's PBKY (the public key of an
// asymmetric class) and unknown header tags are skipped.
func TestParseKeybagSkipsUnknownTags(t *testing.T) {
	_, kb := sealed(t, "x", fast)
	b := kb.Marshal()
	b = append(b, tlv("PBKY", make([]byte, 32))...)
	b = append(tlv("XTRA", []byte("header extra")), b...)
	parsed, err := ParseKeybag(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parsed, kb) {
		t.Fatal("unknown tags changed the keybag")
	}
}

func FuzzParseKeybag(f *testing.F) {
	_, kb := sealed(f, "x", fast)
	f.Add(kb.Marshal())
	_, legacy := sealed(f, "x", Params{Iter: 1})
	f.Add(legacy.Marshal())
	f.Add(tlv("UUID", nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		kb, err := ParseKeybag(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedKeybag) {
				t.Fatalf("error %v does not wrap ErrMalformedKeybag", err)
			}
			return
		}
		again, err := ParseKeybag(kb.Marshal())
		if err != nil {
			t.Fatalf("re-marshalled keybag does not parse: %v", err)
		}
		if !reflect.DeepEqual(again.Classes, kb.Classes) {
			t.Fatal("classes differ after a round trip")
		}
	})
}

// BenchmarkUnlockDeviceRounds unlocks a keybag sealed with a real
// iPhone's round counts (10,000,000 PBKDF2-SHA256 rounds, then 10,000
// PBKDF2-SHA1): the seconds a person waits for a wrong or right password.
func BenchmarkUnlockDeviceRounds(b *testing.B) {
	ck, err := NewClassKeys(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	kb, err := ck.Seal(context.Background(), []byte("secret"), DeviceParams, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	if kb.DPIC != 10_000_000 || !kb.SlowDerivation() {
		b.Fatalf("DPIC %d", kb.DPIC)
	}
	for b.Loop() {
		if _, err := kb.Unlock(context.Background(), []byte("secret")); err != nil {
			b.Fatal(err)
		}
	}
}
