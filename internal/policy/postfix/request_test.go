package postfix

import (
	"bufio"
	"strings"
	"testing"
)

func TestRequestAttributes(t *testing.T) {
	r, err := readRequest(bufio.NewReaderSize(strings.NewReader("a=1\nb=\nc=x=y\na=2\n\n"), maxLine))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a": "2", "b": "", "c": "x=y", "missing": ""} {
		if got := r.Get(name); got != want {
			t.Errorf("Get(%q) = %q, want %q", name, got, want)
		}
	}
	var got []string
	for k, v := range r.All() {
		got = append(got, k+"="+v)
	}
	if strings.Join(got, " ") != "a=1 b= c=x=y a=2" || r.Len() != 4 {
		t.Errorf("All = %q, Len = %d", got, r.Len())
	}
}
