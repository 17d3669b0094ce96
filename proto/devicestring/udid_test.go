package devicestring

import "testing"

func TestUDID(t *testing.T) {
	tests := []struct{ in, want string }{
		{"2ECC121CE06789C7F486CDF88835214617311041", "2ecc121ce06789c7f486cdf88835214617311041"},
		{"2ecc121ce06789c7f486cdf88835214617311041", "2ecc121ce06789c7f486cdf88835214617311041"},
		{"00008030-001a2b3c4d5e802e", "00008030-001A2B3C4D5E802E"},
		{"00008030-001A2b3C4d5E802e", "00008030-001A2B3C4D5E802E"},
		{"00008030-001A2B3C4D5E802E", "00008030-001A2B3C4D5E802E"},
		{"00008030001a2b3c4d5e802e", "00008030-001A2B3C4D5E802E"}, // the USB serial
		{"AAAA-1111", "AAAA-1111"},                 // not a phone's form: as it is
		{"a4:c3:f0:00:00:01", "a4:c3:f0:00:00:01"}, // a MAC address usbmuxd may list
		{"2ECC121CE06789C7F486CDF8883521461731104G", "2ECC121CE06789C7F486CDF8883521461731104G"}, // not hex
		{"", ""},
	}
	for _, tt := range tests {
		if got := UDID(tt.in); got != tt.want {
			t.Errorf("UDID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
