package engine

import (
	"strconv"
	"testing"
)

// appendQuote writes what strconv.AppendQuote does, for every byte alone
// and for names that take either path.
func TestAppendQuote(t *testing.T) {
	cases := []string{"", "root", "info@example.org", `a"b`, `a\b`, "tab\there", "ümlaut", "\x7f", "~ ", "日本", "bad\xffutf8"}
	for c := range 256 {
		cases = append(cases, string([]byte{byte(c)}), "x"+string([]byte{byte(c)})+"y")
	}
	for _, s := range cases {
		if got, want := string(appendQuote([]byte("<"), s)), string(strconv.AppendQuote([]byte("<"), s)); got != want {
			t.Errorf("appendQuote(%q) = %s, want %s", s, got, want)
		}
	}
}
