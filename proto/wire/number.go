package wire

import "math"

// Int reads a decoded plist number as an int64. Peers write integers both
// signed and unsigned (libimobiledevice sends -13 as the unsigned 2^64-13),
// so a uint64 is reinterpreted as two's complement. A real number with no
// fraction counts too, because some devices send one where an integer
// belongs; one with a fraction, or out of range, does not. The cases are
// types, not kinds, so that a plist.UID (an object reference, not a
// number) is refused.
func Int(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case uint64:
		return int64(n), true
	case int:
		return int64(n), true
	case uint:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint32:
		return int64(n), true
	case int16:
		return int64(n), true
	case uint16:
		return int64(n), true
	case int8:
		return int64(n), true
	case uint8:
		return int64(n), true
	case float64:
		return wholeReal(n)
	case float32:
		return wholeReal(float64(n))
	}
	return 0, false
}

// Uint reads a decoded plist number that must not be negative as a
// uint64. A uint64 is taken as it is (all 64 bits are a count); anything
// else goes through Int and must come out non-negative.
func Uint(v any) (uint64, bool) {
	if n, ok := v.(uint64); ok {
		return n, true
	}
	if u, ok := v.(uint); ok {
		return uint64(u), true
	}
	n, ok := Int(v)
	if !ok || n < 0 {
		return 0, false
	}
	return uint64(n), true
}

// Real reads a decoded plist number, real or integer, as a float64.
func Real(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	}
	if i, ok := Int(v); ok {
		return float64(i), true
	}
	return 0, false
}

// wholeReal accepts a real number that is an integer within int64's range.
func wholeReal(f float64) (int64, bool) {
	// -2^63 is exact as a float64; 2^63 is not an int64.
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}
