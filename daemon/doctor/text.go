package doctor

import (
	"fmt"
	"io"
	"strings"
)

// Legend explains the marks of the text report.
const Legend = "✓ ok   ! warning   ✗ failed   - skipped"

// titleWidth aligns what each check found.
const titleWidth = 18

// Print writes the report for people: a row per check with its mark,
// title and what it found, and under a failure or a warning the fix.
func Print(w io.Writer, rep Report) error {
	var b strings.Builder
	b.WriteString("This computer\n")
	printChecks(&b, rep.Checks)
	for _, d := range rep.Devices {
		name := d.Name
		if name == "" {
			name = "iPhone"
		}
		fmt.Fprintf(&b, "\n%s (%s)", name, d.UDID)
		if d.ProductType != "" {
			fmt.Fprintf(&b, ", %s", d.ProductType)
		}
		if !d.Connected {
			b.WriteString(", not connected")
		}
		b.WriteString("\n")
		printChecks(&b, d.Checks)
	}
	failed, warned := 0, 0
	count := func(cs []Check) {
		for _, c := range cs {
			switch c.Status {
			case Failed:
				failed++
			case Warning:
				warned++
			}
		}
	}
	count(rep.Checks)
	for _, d := range rep.Devices {
		count(d.Checks)
	}
	b.WriteString("\n")
	switch {
	case failed == 0 && warned == 0:
		b.WriteString("All checks passed.")
	case failed == 0:
		fmt.Fprintf(&b, "No check failed; %s.", plural(warned, "warning", "warnings"))
	default:
		fmt.Fprintf(&b, "%s failed", plural(failed, "check", "checks"))
		if warned > 0 {
			fmt.Fprintf(&b, "; %s", plural(warned, "warning", "warnings"))
		}
		b.WriteString(".")
	}
	fmt.Fprintf(&b, "   (%s)\n", Legend)
	_, err := io.WriteString(w, b.String())
	return err
}

func printChecks(b *strings.Builder, cs []Check) {
	indent := strings.Repeat(" ", 4+titleWidth+1)
	for _, c := range cs {
		fmt.Fprintf(b, "  %s %-*s %s\n", c.Status.Mark(), titleWidth, c.Title, c.Found)
		if c.Fix != "" && (c.Status == Failed || c.Status == Warning) {
			fmt.Fprintf(b, "%sFix: %s\n", indent, c.Fix)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
