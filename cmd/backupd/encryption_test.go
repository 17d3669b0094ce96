package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestPasswordSource(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, body)
		return p
	}
	typed := func(answers ...string) func(string) (string, error) {
		return func(string) (string, error) {
			a := answers[0]
			answers = answers[1:]
			return a, nil
		}
	}
	tests := []struct {
		name    string
		src     passwordSource
		enable  bool
		want    string
		wantErr string
	}{
		{"file, first line", passwordSource{file: file("a", "s3cret\nignored\n")}, true, "s3cret", ""},
		{"file with CRLF", passwordSource{file: file("b", "s3cret\r\n")}, true, "s3cret", ""},
		{"file without newline", passwordSource{file: file("c", "s3cret")}, false, "s3cret", ""},
		{"empty file", passwordSource{file: file("d", "")}, true, "", "is empty"},
		{"empty first line", passwordSource{file: file("e", "\nsecond\n")}, true, "", "is empty"},
		{"missing file", passwordSource{file: filepath.Join(dir, "nope")}, true, "", "password file: open"},
		{"too long", passwordSource{file: file("f", strings.Repeat("x", maxPasswordLen+1))}, true, "", "longer than"},
		{"stdin", passwordSource{file: "-", stdin: strings.NewReader("from-stdin\n")}, true, "from-stdin", ""},
		{"empty stdin", passwordSource{file: "-", stdin: strings.NewReader("")}, true, "", "the password in stdin is empty"},
		{"typed twice", passwordSource{tty: true, prompt: typed("pw", "pw")}, true, "pw", ""},
		{"typed twice, differing", passwordSource{tty: true, prompt: typed("pw", "wp")}, true, "", "the two passwords differ"},
		{"typed once to turn it off", passwordSource{tty: true, prompt: typed("pw")}, false, "pw", ""},
		{"typed empty", passwordSource{tty: true, prompt: typed("")}, true, "", "the password is empty"},
		{"no terminal", passwordSource{}, true, "", "no terminal to ask for the password on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.src.read(tt.enable, "Anna's iPhone")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("read = %q, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("read = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
