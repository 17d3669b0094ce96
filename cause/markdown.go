package cause

import (
	"strings"
)

// Markdown renders every cause as a Markdown table (code, what it means,
// what to do), in All's order. The README's troubleshooting section is
// this output, so the two cannot drift apart unnoticed.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| Code | What happened | What to do |\n")
	b.WriteString("|---|---|---|\n")
	for _, in := range All() {
		b.WriteString("| `")
		b.WriteString(string(in.Code))
		b.WriteString("` | ")
		b.WriteString(cell(in.Summary))
		b.WriteString(" | ")
		b.WriteString(cell(in.Fix))
		b.WriteString(" |\n")
	}
	return b.String()
}

// cell makes s safe inside a table cell: a pipe would end the cell and a
// newline the row.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\r\n", " ")
	return strings.ReplaceAll(s, "\n", " ")
}
