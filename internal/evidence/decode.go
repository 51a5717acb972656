package evidence

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
)

// maxEncoded bounds the encoded text of one part read into memory before
// decoding: a part's decoded size is then bounded by the byte budget.
const maxEncoded = 64 << 20

// decoder returns a part's body decoded from its transfer encoding.
// Spam is often encoded carelessly, so decoding is lenient where the
// standard library is strict: base64 with stray characters or missing
// padding, quoted-printable with a bare "=" are read as far as they make
// sense, and the problem is reported with what was decoded.
func decoder(cte string, r io.Reader) io.Reader {
	switch cte {
	case "base64":
		return &lazy{f: func() ([]byte, error) { return decodeBase64(r) }}
	case "quoted-printable":
		return &lazy{f: func() ([]byte, error) { return decodeQP(r) }}
	}
	return r
}

// lazy decodes on first read, then serves the bytes and the error.
type lazy struct {
	f    func() ([]byte, error)
	data *bytes.Reader
	err  error
}

func (l *lazy) Read(p []byte) (int, error) {
	if l.data == nil {
		var b []byte
		b, l.err = l.f()
		l.data = bytes.NewReader(b)
	}
	n, err := l.data.Read(p)
	if err == io.EOF && l.err != nil {
		err, l.err = l.err, nil
	}
	return n, err
}

// decodeBase64 and decodeQP decode what could be read; a read error (a
// multipart cut off before its closing boundary) is returned with it.
func decodeBase64(r io.Reader) ([]byte, error) {
	enc, readErr := io.ReadAll(io.LimitReader(r, maxEncoded))
	// Keep the alphabet; whitespace, line breaks and stray bytes go, and
	// the data ends at the first padding.
	clean := enc[:0]
	stray := 0
	for _, c := range enc {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=':
			goto done
		case c == ' ', c == '\t', c == '\r', c == '\n':
		default:
			stray++
		}
	}
done:
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1] // a lone sextet holds no whole byte
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, err := base64.RawStdEncoding.Decode(out, clean)
	if err == nil && stray > 0 {
		err = fmt.Errorf("%d bytes outside the base64 alphabet skipped", stray)
	}
	return out[:n], errors.Join(readErr, err)
}

func decodeQP(r io.Reader) ([]byte, error) {
	enc, readErr := io.ReadAll(io.LimitReader(r, maxEncoded))
	out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(enc)))
	if err == nil {
		return out, readErr
	}
	return lenientQP(enc), errors.Join(readErr, fmt.Errorf("%v (read leniently)", err))
}

// lenientQP decodes quoted-printable as mail clients do when it is
// broken: "=XX" is a byte, "=" at the end of a line joins it to the next,
// and any other "=" is itself.
func lenientQP(enc []byte) []byte {
	out := make([]byte, 0, len(enc))
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		switch {
		case i+2 < len(enc) && isHex(enc[i+1]) && isHex(enc[i+2]):
			out = append(out, unhex(enc[i+1])<<4|unhex(enc[i+2]))
			i += 2
		case i+1 < len(enc) && enc[i+1] == '\n':
			i++
		case i+2 < len(enc) && enc[i+1] == '\r' && enc[i+2] == '\n':
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
