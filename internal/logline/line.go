// Package logline defines Line, one log record with its envelope parsed, and
// the parsers that find that envelope: RFC 3164 and RFC 5424 syslog, ISO 8601
// and other common time stamps, and journald's JSON export.
package logline

import (
	"errors"
	"time"
)

// Line is one log record with its envelope parsed. Strings point into the
// record as read; nothing is copied.
type Line struct {
	Time    time.Time // zero when the record carries no recognisable stamp
	Host    string    // the sending host, when the envelope names one
	Program string    // "sshd", "postfix/smtpd"; without "[pid]" or "(facility)"
	PID     int       // zero when absent
	Message string    // the text after the envelope
	Raw     string    // the whole record
	Origin  string    // where it was read: a path, "journald", "syslog", "stdin"
	Read    time.Time // when a live source read it (lines read together share one clock reading); zero when the source does not say
	// Repeats is N for rsyslog's "message repeated N times: [ MSG]": the
	// line stands for N messages like MSG, which is its Message; 0 for a
	// line that stands for itself alone.
	Repeats int
}

// MaxLen is the longest record the parsers accept. Longer records are
// rejected with ErrTooLong by Parse; sources cut them before that.
const MaxLen = 16 << 10

// Errors that make a record unusable. Callers count them and move on.
var (
	ErrTooLong = errors.New("record longer than 16 KiB")
	ErrBinary  = errors.New("record holds binary data")
	ErrFuture  = errors.New("time stamp more than a day in the future")
	ErrEmpty   = errors.New("empty record")
)
