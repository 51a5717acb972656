package trap

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	raw := "From: =?UTF-8?B?UGF5UGFs?= <x@spam.example>\r\nTo: you@example.org\r\nSubject: urgent \x1b[31mred\x1b[0m\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b1\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Log in at http://phish.example/login=3Fid=3D1 now\x07\r\n" +
		"--b1\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"PGEgaHJlZj0iaHR0cHM6Ly9ldmlsLmV4YW1wbGUvcCI+Y2xpY2s8L2E+\r\n" +
		"--b1\r\nContent-Type: application/pdf; name=\"invoice.pdf\"\r\n\r\nJVBERi0=\r\n--b1--\r\n"
	got := Render([]byte(raw))
	for _, want := range []string{"From: PayPal <x@spam.example>", "Subject: urgent \\x1b[31mred\\x1b[0m",
		"Log in at http://phish.example/login?id=1 now", "invoice.pdf (application/pdf)",
		"Links (not opened):", "  https://evil.example/p"} {
		if !strings.Contains(got, want) {
			t.Errorf("rendering lacks %q:\n%s", want, got)
		}
	}
	if strings.ContainsRune(got, 0x1b) || strings.ContainsRune(got, 0x07) {
		t.Errorf("control characters reached the rendering:\n%q", got)
	}
	// Broken input renders without an error.
	for _, in := range []string{"", "no headers at all", "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nunterminated"} {
		if out := Render([]byte(in)); out == "" {
			t.Errorf("%q rendered as nothing", in)
		}
	}
}
