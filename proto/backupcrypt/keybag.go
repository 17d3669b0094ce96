package backupcrypt

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits on a keybag from a backup. A real backup keybag is about 1 KiB
// with ten or so class keys.
const (
	MaxKeybag  = 64 << 10
	maxClasses = 64
	// MaxRounds bounds ITER and DPIC, so that a hostile keybag cannot make
	// the key derivation run for hours. Devices use 10,000,000 DPIC rounds.
	MaxRounds = 1 << 26
)

// Wrap bits of a class key: which keys it is wrapped with.
const (
	WrapDevice   = 1 // the device's own key: never present in a backup keybag
	WrapPasscode = 2 // the key derived from the backup password
)

// KeybagTypeBackup is TYPE of a backup keybag.
const KeybagTypeBackup = 1

// ErrMalformedKeybag is wrapped by every ParseKeybag error.
var ErrMalformedKeybag = errors.New("backupcrypt: malformed keybag")

// ErrWrongPassword means the password does not unlock the keybag: the
// unwrap of a class key failed its integrity check. Nothing else can tell
// a wrong password, and this needs no device.
var ErrWrongPassword = errors.New("backupcrypt: wrong backup password")

// Keybag is a parsed BackupKeyBag.
type Keybag struct {
	Version, Type uint32
	UUID, HMCK    []byte
	Wrap          uint32
	Salt          []byte // SALT: the salt of the SHA-1 step
	Iter          uint32 // ITER: the rounds of the SHA-1 step
	// DPWT, DPIC and DPSL describe the SHA-256 step iOS 10.2 and later
	// add before it; DPSL is empty in an older keybag.
	DPWT, DPIC uint32
	DPSL       []byte
	Classes    []ClassKey
}

// ClassKey is one protection class's wrapped key.
type ClassKey struct {
	UUID    []byte
	Class   uint32
	Wrap    uint32
	KeyType uint32
	WPKY    []byte // the wrapped key
}

// Tags of 4-byte big-endian integers.
var intTags = map[string]bool{"VERS": true, "TYPE": true, "WRAP": true, "ITER": true,
	"DPWT": true, "DPIC": true, "CLAS": true, "KTYP": true}

// ParseKeybag reads a keybag's TLV records: a 4-byte tag, a 4-byte
// big-endian length and the value. The header (VERS, TYPE, UUID, HMCK,
// WRAP, SALT, ITER, DPWT, DPIC, DPSL) comes first; each later UUID starts
// a class key (UUID, CLAS, WRAP, KTYP, WPKY). Unknown tags are skipped.
func ParseKeybag(b []byte) (*Keybag, error) {
	if len(b) > MaxKeybag {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrMalformedKeybag, len(b), MaxKeybag)
	}
	kb := &Keybag{}
	var cur *ClassKey
	seen := map[uint32]bool{}
	haveUUID := false
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformedKeybag, len(b))
		}
		tag := string(b[:4])
		n := binary.BigEndian.Uint32(b[4:8])
		if uint64(n) > uint64(len(b)-8) {
			return nil, fmt.Errorf("%w: %q of %d bytes overruns the keybag", ErrMalformedKeybag, tag, n)
		}
		val := b[8 : 8+n]
		b = b[8+n:]
		var num uint32
		if intTags[tag] {
			if n != 4 {
				return nil, fmt.Errorf("%w: %q is %d bytes, not 4", ErrMalformedKeybag, tag, n)
			}
			num = binary.BigEndian.Uint32(val)
		}
		if tag == "UUID" {
			if !haveUUID {
				// The first UUID is the keybag's own.
				haveUUID, kb.UUID = true, clone(val)
				continue
			}
			if err := kb.addClass(cur, seen); err != nil {
				return nil, err
			}
			cur = &ClassKey{UUID: clone(val)}
			continue
		}
		if cur != nil {
			cur.set(tag, num, val)
		} else {
			kb.set(tag, num, val)
		}
	}
	if err := kb.addClass(cur, seen); err != nil {
		return nil, err
	}
	if !haveUUID {
		return nil, fmt.Errorf("%w: no UUID", ErrMalformedKeybag)
	}
	return kb, nil
}

// clone copies a value out of the keybag's buffer; empty is nil.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

func (kb *Keybag) set(tag string, num uint32, val []byte) {
	switch tag {
	case "VERS":
		kb.Version = num
	case "TYPE":
		kb.Type = num
	case "HMCK":
		kb.HMCK = clone(val)
	case "WRAP":
		kb.Wrap = num
	case "SALT":
		kb.Salt = clone(val)
	case "ITER":
		kb.Iter = num
	case "DPWT":
		kb.DPWT = num
	case "DPIC":
		kb.DPIC = num
	case "DPSL":
		kb.DPSL = clone(val)
	}
}

func (c *ClassKey) set(tag string, num uint32, val []byte) {
	switch tag {
	case "CLAS":
		c.Class = num
	case "WRAP":
		c.Wrap = num
	case "KTYP":
		c.KeyType = num
	case "WPKY":
		c.WPKY = clone(val)
	}
}

func (kb *Keybag) addClass(c *ClassKey, seen map[uint32]bool) error {
	if c == nil {
		return nil
	}
	if seen[c.Class] {
		return fmt.Errorf("%w: class %d twice", ErrMalformedKeybag, c.Class)
	}
	if len(kb.Classes) == maxClasses {
		return fmt.Errorf("%w: more than %d class keys", ErrMalformedKeybag, maxClasses)
	}
	seen[c.Class] = true
	kb.Classes = append(kb.Classes, *c)
	return nil
}

// Marshal writes the keybag in its TLV form, header first.
func (kb *Keybag) Marshal() []byte {
	var b []byte
	put := func(tag string, val []byte) {
		b = append(b, tag...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(val)))
		b = append(b, val...)
	}
	putInt := func(tag string, n uint32) { put(tag, binary.BigEndian.AppendUint32(nil, n)) }
	putInt("VERS", kb.Version)
	putInt("TYPE", kb.Type)
	put("UUID", kb.UUID)
	put("HMCK", kb.HMCK)
	putInt("WRAP", kb.Wrap)
	put("SALT", kb.Salt)
	putInt("ITER", kb.Iter)
	if len(kb.DPSL) > 0 {
		putInt("DPWT", kb.DPWT)
		putInt("DPIC", kb.DPIC)
		put("DPSL", kb.DPSL)
	}
	for _, c := range kb.Classes {
		put("UUID", c.UUID)
		putInt("CLAS", c.Class)
		putInt("WRAP", c.Wrap)
		putInt("KTYP", c.KeyType)
		put("WPKY", c.WPKY)
	}
	return b
}

// SlowDerivation reports whether deriving the key will take seconds (the
// SHA-256 step of iOS 10.2 and later with a device's round count), so a
// caller can say so while it runs.
func (kb *Keybag) SlowDerivation() bool { return len(kb.DPSL) > 0 && kb.DPIC >= 100_000 }

// DeriveKey derives the key that unwraps the class keys from the
// password: PBKDF2-HMAC-SHA256 over DPSL and DPIC rounds (when the keybag
// has DPSL), then PBKDF2-HMAC-SHA1 over SALT and ITER rounds, 32 bytes
// each. It returns when ctx ends, leaving the computation to finish in
// the background.
func (kb *Keybag) DeriveKey(ctx context.Context, password []byte) ([]byte, error) {
	if len(kb.Salt) == 0 || kb.Iter == 0 || kb.Iter > MaxRounds {
		return nil, fmt.Errorf("%w: SALT of %d bytes and ITER %d cannot derive a key", ErrMalformedKeybag, len(kb.Salt), kb.Iter)
	}
	if len(kb.DPSL) > 0 && (kb.DPIC == 0 || kb.DPIC > MaxRounds) {
		return nil, fmt.Errorf("%w: DPIC %d", ErrMalformedKeybag, kb.DPIC)
	}
	type result struct {
		key []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		key, err := kb.derive(password)
		done <- result{key, err}
	}()
	select {
	case r := <-done:
		return r.key, r.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

func (kb *Keybag) derive(password []byte) ([]byte, error) {
	secret := string(password)
	if len(kb.DPSL) > 0 {
		k1, err := pbkdf2.Key(sha256.New, secret, kb.DPSL, int(kb.DPIC), 32)
		if err != nil {
			return nil, fmt.Errorf("backupcrypt: PBKDF2-SHA256: %w", err)
		}
		secret = string(k1)
		clear(k1)
	}
	key, err := pbkdf2.Key(sha1.New, secret, kb.Salt, int(kb.Iter), 32)
	if err != nil {
		return nil, fmt.Errorf("backupcrypt: PBKDF2-SHA1: %w", err)
	}
	return key, nil
}

// ClassKeys are the unwrapped class keys of an unlocked keybag.
type ClassKeys struct {
	keys map[uint32][]byte
}

// Unlock derives the key from the password and unwraps every class key
// wrapped with it. A wrong password is ErrWrongPassword.
func (kb *Keybag) Unlock(ctx context.Context, password []byte) (*ClassKeys, error) {
	kek, err := kb.DeriveKey(ctx, password)
	if err != nil {
		return nil, err
	}
	defer clear(kek)
	return kb.UnlockWithKey(kek)
}

// UnlockWithKey unwraps the class keys with an already derived key.
func (kb *Keybag) UnlockWithKey(kek []byte) (*ClassKeys, error) {
	ck := &ClassKeys{keys: map[uint32][]byte{}}
	for _, c := range kb.Classes {
		if c.Wrap&WrapPasscode == 0 || len(c.WPKY) == 0 {
			continue
		}
		k, err := Unwrap(kek, c.WPKY)
		if errors.Is(err, ErrIntegrity) {
			return nil, ErrWrongPassword
		}
		if err != nil {
			return nil, fmt.Errorf("%w: class %d: %v", ErrMalformedKeybag, c.Class, err)
		}
		ck.keys[c.Class] = k
	}
	if len(ck.keys) == 0 {
		return nil, fmt.Errorf("%w: no class key is wrapped with the password", ErrMalformedKeybag)
	}
	return ck, nil
}

// WrappedKeyLen is the length of a wrapped 256-bit key.
const WrappedKeyLen = 40

// Unwrap unwraps a key stored as a 4-byte little-endian protection class
// followed by the key wrapped with that class's key: ManifestKey, and an
// MBFile's EncryptionKey.
func (ck *ClassKeys) Unwrap(classAndKey []byte) ([]byte, error) {
	if len(classAndKey) != 4+WrappedKeyLen {
		return nil, fmt.Errorf("backupcrypt: a stored key is %d bytes, not %d", len(classAndKey), 4+WrappedKeyLen)
	}
	return ck.UnwrapClass(binary.LittleEndian.Uint32(classAndKey), classAndKey[4:])
}

// UnwrapClass unwraps a key wrapped with the key of a protection class.
func (ck *ClassKeys) UnwrapClass(class uint32, wrapped []byte) ([]byte, error) {
	kek, ok := ck.keys[class]
	if !ok {
		return nil, fmt.Errorf("backupcrypt: no key for protection class %d", class)
	}
	k, err := Unwrap(kek, wrapped)
	if err != nil {
		return nil, fmt.Errorf("backupcrypt: key of class %d: %w", class, err)
	}
	return k, nil
}

// Wrap wraps key with the key of class and prefixes the class, the form
// Unwrap reads.
func (ck *ClassKeys) Wrap(class uint32, key []byte) ([]byte, error) {
	kek, ok := ck.keys[class]
	if !ok {
		return nil, fmt.Errorf("backupcrypt: no key for protection class %d", class)
	}
	w, err := Wrap(kek, key)
	if err != nil {
		return nil, err
	}
	return append(binary.LittleEndian.AppendUint32(nil, class), w...), nil
}

// Params are the key derivation round counts of a new keybag.
type Params struct {
	// DPIC is the SHA-256 rounds; 0 makes a keybag of iOS before 10.2,
	// with the SHA-1 step only.
	DPIC uint32
	// Iter is the SHA-1 rounds.
	Iter uint32
}

// DeviceParams are the round counts iPhones use.
var DeviceParams = Params{DPIC: 10_000_000, Iter: 10_000}

// NewClassKeys makes random 256-bit keys for the protection classes an
// iPhone's backup keybag holds (1 to 11, without 5).
func NewClassKeys(rnd io.Reader) (*ClassKeys, error) {
	ck := &ClassKeys{keys: map[uint32][]byte{}}
	for c := uint32(1); c <= 11; c++ {
		if c == 5 {
			continue
		}
		k := make([]byte, 32)
		if _, err := io.ReadFull(rnd, k); err != nil {
			return nil, err
		}
		ck.keys[c] = k
	}
	return ck, nil
}

// Seal builds a backup keybag holding the class keys, each wrapped with
// the key derived from password, as an iPhone does when backup
// encryption is turned on or its password changes.
func (ck *ClassKeys) Seal(ctx context.Context, password []byte, p Params, rnd io.Reader) (*Keybag, error) {
	random := func(n int) ([]byte, error) {
		b := make([]byte, n)
		_, err := io.ReadFull(rnd, b)
		return b, err
	}
	kb := &Keybag{Version: 4, Type: KeybagTypeBackup, Iter: p.Iter, DPIC: p.DPIC}
	var err error
	for _, f := range []struct {
		dst *[]byte
		n   int
	}{{&kb.UUID, 16}, {&kb.HMCK, 40}, {&kb.Salt, 20}} {
		if *f.dst, err = random(f.n); err != nil {
			return nil, err
		}
	}
	if p.DPIC > 0 {
		kb.DPWT = 1
		if kb.DPSL, err = random(20); err != nil {
			return nil, err
		}
	}
	kek, err := kb.DeriveKey(ctx, password)
	if err != nil {
		return nil, err
	}
	defer clear(kek)
	for c := uint32(1); c <= 11; c++ {
		k, ok := ck.keys[c]
		if !ok {
			continue
		}
		uuid, err := random(16)
		if err != nil {
			return nil, err
		}
		w, err := Wrap(kek, k)
		if err != nil {
			return nil, err
		}
		kb.Classes = append(kb.Classes, ClassKey{UUID: uuid, Class: c, Wrap: WrapPasscode, WPKY: w})
	}
	return kb, nil
}
