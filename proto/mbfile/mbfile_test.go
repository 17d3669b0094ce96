package mbfile

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"howett.net/plist"

	"github.com/backupd/backupd/proto/wire"
)

func sampleKey() []byte {
	k := make([]byte, KeyLen)
	k[0] = 3 // class 3, little-endian
	for i := 4; i < KeyLen; i++ {
		k[i] = byte(i)
	}
	return k
}

func samples() map[string]File {
	return map[string]File{
		"plain file": {RelativePath: "Media/DCIM/100APPLE/IMG_0001.HEIC", Size: 123456, Mode: 0o100644,
			LastModified: 1700000000, LastStatusChange: 1700000001, Birth: 1690000000, InodeNumber: 42,
			UserID: 501, GroupID: 501, ProtectionClass: 3},
		"encrypted file": {RelativePath: "Library/SMS/sms.db", Size: 1 << 33, Mode: 0o100600,
			LastModified: 1, ProtectionClass: 3, EncryptionKey: sampleKey(), Generation: 7},
		"directory":  {RelativePath: "Library", Mode: 0o040755, ProtectionClass: 4},
		"symlink":    {RelativePath: "Library/link", Mode: 0o120755, Target: "../Documents/x", Size: 14},
		"empty path": {Mode: 0o040755},
	}
}

func TestRoundTrip(t *testing.T) {
	for name, f := range samples() {
		t.Run(name, func(t *testing.T) {
			b, err := Encode(f)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, f) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, f)
			}
		})
	}
}

// TestShapeAsPublicReadersExpect reads an encoded archive the way the
// public parsers do (iphone_backup_decrypt, iOSbackup, the Ruby and JS
// readers): the root at $objects[1] via $top.root, ProtectionClass an
// integer there, EncryptionKey a reference to an NSMutableData object
// whose NS.data is the 4-byte class and the 40-byte wrapped key.
func TestShapeAsPublicReadersExpect(t *testing.T) {
	f := samples()["encrypted file"]
	b, err := Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("bplist00")) {
		t.Fatalf("not a binary plist: %q", b[:8])
	}
	var a map[string]any
	if err := wire.Decode(b, &a); err != nil {
		t.Fatal(err)
	}
	if a["$archiver"] != "NSKeyedArchiver" || a["$version"] != uint64(100000) {
		t.Fatalf("envelope: $archiver %v $version %v", a["$archiver"], a["$version"])
	}
	objs := a["$objects"].([]any)
	if objs[0] != "$null" {
		t.Fatalf("$objects[0] = %v", objs[0])
	}
	if root := a["$top"].(map[string]any)["root"]; root != plist.UID(1) {
		t.Fatalf("$top.root = %v, want UID 1", root)
	}
	obj := objs[1].(map[string]any)
	if obj["ProtectionClass"] != uint64(3) || obj["Size"] != uint64(1<<33) {
		t.Fatalf("root: ProtectionClass %v Size %v", obj["ProtectionClass"], obj["Size"])
	}
	if cls := objs[obj["$class"].(plist.UID)].(map[string]any); cls["$classname"] != "MBFile" {
		t.Fatalf("root class %v", cls)
	}
	if p := objs[obj["RelativePath"].(plist.UID)]; p != f.RelativePath {
		t.Fatalf("RelativePath %v", p)
	}
	key := objs[obj["EncryptionKey"].(plist.UID)].(map[string]any)
	if cls := objs[key["$class"].(plist.UID)].(map[string]any); cls["$classname"] != "NSMutableData" ||
		!reflect.DeepEqual(cls["$classes"], []any{"NSMutableData", "NSData", "NSObject"}) {
		t.Fatalf("key class %v", cls)
	}
	data := key["NS.data"].([]byte)
	if len(data) != 44 || data[0] != 3 || !bytes.Equal(data[4:], f.EncryptionKey[4:]) {
		t.Fatalf("NS.data %x", data)
	}
}

func encodeRaw(t testing.TB, objs []any, root any) []byte {
	t.Helper()
	b, err := wire.Encode(map[string]any{"$archiver": "NSKeyedArchiver", "$version": 100000,
		"$top": map[string]any{"root": root}, "$objects": objs}, wire.Binary)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRejects(t *testing.T) {
	class := map[string]any{"$classname": "MBFile", "$classes": []any{"MBFile", "NSObject"}}
	good := func() map[string]any {
		return map[string]any{"Size": 1, "Mode": 0o100644, "$class": plist.UID(2)}
	}
	with := func(k string, v any) map[string]any { m := good(); m[k] = v; return m }
	without := func(k string) map[string]any { m := good(); delete(m, k); return m }
	cases := map[string][]byte{
		"empty":             nil,
		"not a plist":       []byte("hello"),
		"truncated bplist":  []byte("bplist00\x00\x01"),
		"too large":         append([]byte("bplist00"), make([]byte, MaxArchive)...),
		"root out of range": encodeRaw(t, []any{"$null", good(), class}, plist.UID(9)),
		"root not a dict":   encodeRaw(t, []any{"$null", "x", class}, plist.UID(1)),
		"root not a UID":    encodeRaw(t, []any{"$null", good(), class}, 1),
		"no Size":           encodeRaw(t, []any{"$null", without("Size"), class}, plist.UID(1)),
		"Size a string":     encodeRaw(t, []any{"$null", with("Size", "1"), class}, plist.UID(1)),
		"negative Size":     encodeRaw(t, []any{"$null", with("Size", -1), class}, plist.UID(1)),
		"no class":          encodeRaw(t, []any{"$null", without("$class"), class}, plist.UID(1)),
		"wrong class":       encodeRaw(t, []any{"$null", good(), map[string]any{"$classname": "NSDate"}}, plist.UID(1)),
		"path not a ref":    encodeRaw(t, []any{"$null", with("RelativePath", "x"), class}, plist.UID(1)),
		"path ref to int":   encodeRaw(t, []any{"$null", with("RelativePath", plist.UID(3)), class, 5}, plist.UID(1)),
		"key ref dangling":  encodeRaw(t, []any{"$null", with("EncryptionKey", plist.UID(99)), class}, plist.UID(1)),
		"key wrong length":  encodeRaw(t, []any{"$null", with("EncryptionKey", plist.UID(3)), class, []byte{1, 2, 3}}, plist.UID(1)),
		"key no NS.data": encodeRaw(t, []any{"$null", with("EncryptionKey", plist.UID(3)), class,
			map[string]any{"$class": plist.UID(4)}, map[string]any{"$classname": "NSData"}}, plist.UID(1)),
	}
	for name, blob := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(blob)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		b, err := Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("bplist00"))
	f.Add([]byte("<plist><dict></dict></plist>"))
	f.Fuzz(func(t *testing.T, blob []byte) {
		got, err := Decode(blob)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes re-encodes to the same record.
		b, err := Encode(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decode(b)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-encoded record differs: %+v vs %+v (%v)", again, got, err)
		}
	})
}
