package devicestring

import "strings"

// UDID returns a UDID in the spelling phones report it in: a legacy
// 40-hex-digit UDID in lower case, the newer 8-16 form
// (00008030-001A2B3C4D5E802E) in upper case, with its '-' put back when
// it is typed as the 24 digits of the phone's USB serial. A person may
// type either in any case; on macOS and Windows, whose file systems ignore case, two
// spellings would otherwise share one backup folder with two histories
// and two workers. Anything else is returned as it is.
func UDID(s string) string {
	switch {
	case len(s) == 40 && allHex(s):
		return strings.ToLower(s)
	case len(s) == 25 && s[8] == '-' && allHex(s[:8]) && allHex(s[9:]):
		return strings.ToUpper(s)
	case len(s) == 24 && allHex(s):
		return strings.ToUpper(s[:8] + "-" + s[8:])
	}
	return s
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
