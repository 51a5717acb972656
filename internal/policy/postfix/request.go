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
	"net/netip"
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
	Attrs map[string]string
}

// Get returns an attribute, "" when absent.
func (r *Request) Get(name string) string { return r.Attrs[name] }

// State is protocol_state: CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY, ETRN.
func (r *Request) State() string { return strings.ToUpper(r.Attrs["protocol_state"]) }

// Client returns client_address, unmapped; invalid when absent or malformed.
func (r *Request) Client() netip.Addr {
	a, err := netip.ParseAddr(r.Attrs["client_address"])
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
func readRequest(br *bufio.Reader) (*Request, error) {
	req := &Request{Attrs: make(map[string]string, 32)}
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
			if len(req.Attrs) == 0 {
				return nil, &RequestError{Reason: "empty request"}
			}
			return req, nil
		}
		name, value, ok := bytes.Cut(line, []byte{'='})
		switch {
		case !ok || len(name) == 0:
			if bad == nil {
				bad = &RequestError{Reason: fmt.Sprintf("line without name=value: %.40q", line)}
			}
		case len(req.Attrs) >= maxAttrs:
			if bad == nil {
				bad = &RequestError{Reason: fmt.Sprintf("more than %d attributes", maxAttrs)}
			}
		default:
			req.Attrs[string(name)] = string(value)
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
