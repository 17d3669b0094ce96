package main

import (
	"slices"
	"testing"
)

// TestSpellUDIDs: a UDID typed in another case is the phone's own
// spelling before any command sees it (issue #16); other arguments (a
// glob, on|off) are left alone.
func TestSpellUDIDs(t *testing.T) {
	byName := map[string]command{}
	for _, c := range commands() {
		byName[c.name] = c
	}
	const legacyUpper, legacy = "2ECC121CE06789C7F486CDF88835214617311041", "2ecc121ce06789c7f486cdf88835214617311041"
	const modernLower, modern = "00008030-001a2b3c4d5e802e", "00008030-001A2B3C4D5E802E"
	tests := []struct {
		cmd       string
		pos, want []string
	}{
		{"backup", []string{legacyUpper}, []string{legacy}},
		{"history", []string{modernLower}, []string{modern}},
		{"encryption", []string{"on", modernLower}, []string{"on", modern}},
		{"files", []string{modernLower, legacyUpper}, []string{modern, legacyUpper}}, // the second is a glob
		{"extract", []string{modernLower}, []string{modern}},
		{"restore", []string{modernLower}, []string{modern}},
		{"verify", []string{legacyUpper}, []string{legacy}},
	}
	for _, tt := range tests {
		c, ok := byName[tt.cmd]
		if !ok {
			t.Fatalf("no command %s", tt.cmd)
		}
		pos := slices.Clone(tt.pos)
		c.spellUDIDs(pos)
		if !slices.Equal(pos, tt.want) {
			t.Errorf("%s %v: %v, want %v", tt.cmd, tt.pos, pos, tt.want)
		}
	}
}
