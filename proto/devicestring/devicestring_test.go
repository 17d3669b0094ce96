package devicestring

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "Anna's iPhone", "Anna's iPhone"},
		{"typographic apostrophe and emoji", "Anna’s iPhone 👩‍👩‍👧", "Anna’s iPhone 👩‍👩‍👧"},
		{"CR LF fakes a line", "Phone\r\nSUCCESS  00008030", "Phone\uFFFD\uFFFDSUCCESS  00008030"},
		{"ESC sequence", "Phone\x1b[2J\x1b]0;owned\x07", "Phone\uFFFD[2J\uFFFD]0;owned\uFFFD"},
		{"C1 CSI", "Phone\u009b31m", "Phone\uFFFD31m"},
		{"DEL", "a\x7fb", "a\uFFFDb"},
		{"invalid UTF-8", "Phone\xff\xfe", "Phone\uFFFD\uFFFD"},
		{"bidi override", "Phone\u202egnp.exe", "Phone\uFFFDgnp.exe"},
		{"line separator", "a\u2028b", "a\uFFFDb"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Clean(tt.in); got != tt.want {
				t.Errorf("Clean(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestCleanCapsAtACharacterBoundary(t *testing.T) {
	for _, in := range []string{strings.Repeat("x", 1_000_000), strings.Repeat("é", 200), strings.Repeat("👩", 100)} {
		got := Clean(in)
		if len(got) > Max || !utf8.ValidString(got) {
			t.Errorf("Clean of %d bytes = %d bytes, valid %t; want at most %d valid bytes", len(in), len(got), utf8.ValidString(got), Max)
		}
		if len(got) < Max-3 {
			t.Errorf("Clean of %d bytes kept only %d", len(in), len(got))
		}
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"Anna's iPhone", "a\r\nb", "\x1b[31m", "\xff", "\u202e", strings.Repeat("é", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Clean(s)
		if len(got) > Max || !utf8.ValidString(got) {
			t.Fatalf("Clean(%q) = %q: %d bytes, valid %t", s, got, len(got), utf8.ValidString(got))
		}
		for _, r := range got {
			if unsafe(r) {
				t.Fatalf("Clean(%q) = %q keeps %U", s, got, r)
			}
		}
		if Clean(got) != got {
			t.Fatalf("Clean is not idempotent on %q", s)
		}
		if clean(s) && got != s {
			t.Fatalf("Clean changed the clean %q to %q", s, got)
		}
	})
}
