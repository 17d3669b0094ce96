package wire

import (
	"math"
	"testing"

	"howett.net/plist"
)

func TestNumbers(t *testing.T) {
	type want struct {
		i    int64
		iok  bool
		u    uint64
		uok  bool
		r    float64
		rok  bool
		rNaN bool // NaN is unequal to itself, so r cannot say it
	}
	tests := []struct {
		name string
		v    any
		want want
	}{
		{"uint64", uint64(42), want{i: 42, iok: true, u: 42, uok: true, r: 42, rok: true}},
		{"int64", int64(42), want{i: 42, iok: true, u: 42, uok: true, r: 42, rok: true}},
		{"negative int64", int64(-2), want{i: -2, iok: true, r: -2, rok: true}},
		// libimobiledevice writes -13 as the unsigned 2^64-13.
		{"unsigned negative", uint64(1<<64 - 13), want{i: -13, iok: true, u: 1<<64 - 13, uok: true, r: -13, rok: true}},
		{"uint64 over int64", uint64(1 << 63), want{i: math.MinInt64, iok: true, u: 1 << 63, uok: true, r: math.MinInt64, rok: true}},
		{"int", 7, want{i: 7, iok: true, u: 7, uok: true, r: 7, rok: true}},
		{"negative int", -7, want{i: -7, iok: true, r: -7, rok: true}},
		{"uint", uint(7), want{i: 7, iok: true, u: 7, uok: true, r: 7, rok: true}},
		{"int32", int32(-1), want{i: -1, iok: true, r: -1, rok: true}},
		{"uint32", uint32(1 << 31), want{i: 1 << 31, iok: true, u: 1 << 31, uok: true, r: 1 << 31, rok: true}},
		{"int16", int16(-3), want{i: -3, iok: true, r: -3, rok: true}},
		{"uint16", uint16(3), want{i: 3, iok: true, u: 3, uok: true, r: 3, rok: true}},
		{"int8", int8(-4), want{i: -4, iok: true, r: -4, rok: true}},
		{"uint8", uint8(200), want{i: 200, iok: true, u: 200, uok: true, r: 200, rok: true}},
		{"whole real", 1.5e10, want{i: 1.5e10, iok: true, u: 1.5e10, uok: true, r: 1.5e10, rok: true}},
		{"whole float32", float32(3), want{i: 3, iok: true, u: 3, uok: true, r: 3, rok: true}},
		{"negative whole real", -3.0, want{i: -3, iok: true, r: -3, rok: true}},
		{"fraction", 12.5, want{r: 12.5, rok: true}},
		{"real at 2^63", math.Pow(2, 63), want{r: math.Pow(2, 63), rok: true}},
		{"real at -2^63", -math.Pow(2, 63), want{i: math.MinInt64, iok: true, r: -math.Pow(2, 63), rok: true}},
		{"infinity", math.Inf(1), want{r: math.Inf(1), rok: true}},
		{"NaN", math.NaN(), want{rNaN: true, rok: true}},
		{"string", "42", want{}},
		{"bool", true, want{}},
		{"nil", nil, want{}},
		{"data", []byte{42}, want{}},
		{"object reference", plist.UID(3), want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if i, ok := Int(tt.v); i != tt.want.i || ok != tt.want.iok {
				t.Errorf("Int(%#v) = %d, %v; want %d, %v", tt.v, i, ok, tt.want.i, tt.want.iok)
			}
			if u, ok := Uint(tt.v); u != tt.want.u || ok != tt.want.uok {
				t.Errorf("Uint(%#v) = %d, %v; want %d, %v", tt.v, u, ok, tt.want.u, tt.want.uok)
			}
			r, ok := Real(tt.v)
			if r != tt.want.r && !(tt.want.rNaN && math.IsNaN(r)) || ok != tt.want.rok {
				t.Errorf("Real(%#v) = %v, %v; want %v, %v", tt.v, r, ok, tt.want.r, tt.want.rok)
			}
		})
	}
}
