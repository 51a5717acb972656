package postfix

import (
	"bufio"
	"fmt"
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

// TestLargestRequest checks attribute offsets at the far end of a request
// as large as the limit allows.
func TestLargestRequest(t *testing.T) {
	var b strings.Builder
	val := strings.Repeat("v", maxLine-16)
	n := 0
	for b.Len()+len(val)+16 < maxBytes-1 {
		fmt.Fprintf(&b, "a%d=%s\n", n, val)
		n++
	}
	last := strings.Repeat("w", maxBytes-1-b.Len()-len("z=\n"))
	b.WriteString("z=" + last + "\n\n")
	if b.Len() != maxBytes {
		t.Fatalf("request of %d bytes, want %d", b.Len(), maxBytes)
	}
	r, err := readRequest(bufio.NewReaderSize(strings.NewReader(b.String()), maxLine))
	if err != nil {
		t.Fatal(err)
	}
	if r.Get("z") != last || r.Get(fmt.Sprintf("a%d", n-1)) != val || r.Len() != n+1 {
		t.Fatalf("wrong attributes in a %d-byte request", b.Len())
	}
}
