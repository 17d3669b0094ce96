// Package devicestring makes a string a phone reported (its name, model,
// iOS version) safe to keep, print and pass on.
//
// A phone's name is whatever its owner, or a hostile device, typed: a
// name with CR or LF fakes extra lines in status, history and the logs,
// ESC starts terminal control sequences, invalid UTF-8 breaks the
// Prometheus text format and JSON, and a name of a megabyte makes every
// hook's command line too long and every history record huge. Clean
// answers all of these once, where the string enters backupd: from the
// phone and from records an older backupd stored.
package devicestring

import (
	"strings"
	"unicode/utf8"
)

// Max is the most bytes a cleaned string keeps. Apple caps a device name
// well below it; it leaves room for every name a person gives a phone.
const Max = 255

// Clean returns s as valid UTF-8 of at most Max bytes with no control
// characters: each invalid byte and each control character (C0, DEL,
// C1, the line and paragraph separators and the bidirectional overrides
// and isolates, which reorder what a terminal shows) becomes U+FFFD, and
// the end is cut at a character boundary. Everything else, emoji and
// joiners included, is kept as the owner typed it.
func Clean(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), Max))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError || unsafe(r) {
			r = utf8.RuneError
		}
		if b.Len()+utf8.RuneLen(r) > Max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// clean reports whether s needs no change, the common case, without
// allocating.
func clean(s string) bool {
	if len(s) > Max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unsafe(r) {
			return false
		}
	}
	return true
}

// unsafe reports the characters a terminal, a log line or a label must
// not get from a device.
func unsafe(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r < 0xa0: // C0, DEL, C1 (CSI is 0x9b)
		return true
	case r == 0x2028, r == 0x2029: // line and paragraph separators
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	}
	return false
}
