// Package postfix serves Postfix's SMTP access policy delegation protocol
// (check_policy_service): requests of name=value lines ended by an empty
// line, each answered by "action=..." and an empty line, many requests per
// connection. Held answers (tarpits) cost a timer, not a goroutine.
package postfix

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/netip"
	"slices"
	"strings"
)

// Limits on one request; anything larger is a hostile or broken client.
const (
	maxLine  = 8 << 10  // one name=value line
	maxBytes = 64 << 10 // one whole request
	maxAttrs = 256      // attributes in one request
)

// Request is one policy query. Attributes Postfix may add in later versions
// are kept and otherwise ignored.
type Request struct {
	raw   string // the attribute lines, without their terminators, copied once
	attrs []span // where each attribute is in raw, in the order they came
}

// span locates one attribute in Request.raw: the name is raw[name:eq], the
// value raw[eq+1:end]. A request is at most maxBytes long, newlines and the
// empty last line included, so raw has fewer than 1<<16 bytes.
type span struct{ name, eq, end uint16 }

const _ = uint16(maxBytes - 2) // does not compile if raw could outgrow a span

// Get returns an attribute, "" when absent; of a repeated one, the last.
func (r *Request) Get(name string) string {
	for i := len(r.attrs) - 1; i >= 0; i-- {
		a := r.attrs[i]
		if r.raw[a.name:a.eq] == name {
			return r.raw[a.eq+1 : a.end]
		}
	}
	return ""
}

// Len is the number of attribute lines in the request.
func (r *Request) Len() int { return len(r.attrs) }

// All yields the attributes in the order they came, repeats included.
func (r *Request) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, a := range r.attrs {
			if !yield(r.raw[a.name:a.eq], r.raw[a.eq+1:a.end]) {
				return
			}
		}
	}
}

// State is protocol_state: CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY, ETRN.
func (r *Request) State() string { return strings.ToUpper(r.Get("protocol_state")) }

// Client returns client_address, unmapped; invalid when absent or malformed.
func (r *Request) Client() netip.Addr {
	a, err := netip.ParseAddr(r.Get("client_address"))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// RequestError is a malformed request. The connection answers it with the
// failure action and, after three, is closed; a fatal one (a line or a
// request too long to read to its end) closes it at once.
type RequestError struct {
	Reason string
	fatal  bool
}

func (e *RequestError) Error() string { return "policy request: " + e.Reason }

// errEOF is a clean end of the connection between requests.
var errEOF = errors.New("connection closed")

// readRequest reads one request. It returns errEOF when the client closed
// the connection between requests, a *RequestError for a malformed request
// that was read to its end, and other errors for I/O failures (and for a
// request too large to read to its end safely).
//
// The request's lines are gathered in one buffer and copied into one
// string: a request costs three allocations however many attributes it has
// (Postfix sends about thirty).
func readRequest(br *bufio.Reader) (*Request, error) {
	var buf [2048]byte // most requests fit; a larger one grows on the heap
	var spans [40]span
	raw, attrs := buf[:0], spans[:0]
	total := 0
	var bad *RequestError
	for first := true; ; first = false {
		line, err := readLine(br)
		if err != nil {
			if first && errors.Is(err, errNoData) {
				return nil, errEOF
			}
			return nil, err
		}
		total += len(line) + 1
		if total > maxBytes {
			return nil, &RequestError{Reason: fmt.Sprintf("request larger than %d bytes", maxBytes), fatal: true}
		}
		if len(line) == 0 {
			if bad != nil {
				return nil, bad
			}
			if len(attrs) == 0 {
				return nil, &RequestError{Reason: "empty request"}
			}
			return &Request{raw: string(raw), attrs: slices.Clone(attrs)}, nil
		}
		eq := bytes.IndexByte(line, '=')
		switch {
		case eq <= 0:
			if bad == nil {
				bad = &RequestError{Reason: fmt.Sprintf("line without name=value: %.40q", line)}
			}
		case len(attrs) >= maxAttrs:
			if bad == nil {
				bad = &RequestError{Reason: fmt.Sprintf("more than %d attributes", maxAttrs)}
			}
		default:
			start := len(raw)
			raw = append(raw, line...)
			attrs = append(attrs, span{name: uint16(start), eq: uint16(start + eq), end: uint16(len(raw))})
		}
	}
}

var errNoData = errors.New("no data")

// readLine reads one line without its terminator ("\n" or "\r\n"). The
// reader's buffer is maxLine bytes: a longer line is an error, since the
// rest of the request cannot be trusted. A clean end of input before any
// byte of the line is errNoData.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == nil:
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, &RequestError{Reason: fmt.Sprintf("line longer than %d bytes", maxLine), fatal: true}
	case len(line) == 0 && errors.Is(err, io.EOF):
		return nil, errNoData
	default:
		return nil, err // a partial line at EOF, or a timeout
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
