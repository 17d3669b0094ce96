package api

import "fmt"

// FormatBytes writes a size the way backupd shows sizes to people, in
// binary units: "512 B", "1.5 GiB"; a negative size is 0 B. The CLI,
// doctor, policy notes and notifications share it so a size reads the
// same everywhere.
func FormatBytes[N ~int | ~int64 | ~uint64](n N) string {
	const unit = 1024
	var u uint64
	if n > 0 {
		u = uint64(n)
	}
	if u < unit {
		return fmt.Sprintf("%d B", u)
	}
	div, exp := uint64(unit), 0
	for m := u / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(u)/float64(div), "KMGTPE"[exp])
}
