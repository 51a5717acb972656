package logline

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// JournalEntry is the part of a journal entry Rampart uses: decoded from
// `journalctl --output=json` (ParseJournalEntry, for dumps given to replay
// and test) or set field by field from its export format (the journal
// source).
type JournalEntry struct {
	Cursor     string        `json:"__CURSOR"`
	Realtime   string        `json:"__REALTIME_TIMESTAMP"` // µs since the epoch, as a string
	Hostname   string        `json:"_HOSTNAME"`
	Identifier string        `json:"SYSLOG_IDENTIFIER"`
	Comm       string        `json:"_COMM"`
	PID        string        `json:"_PID"`
	SyslogPID  string        `json:"SYSLOG_PID"`
	Message    journalString `json:"MESSAGE"`
}

// journalString is a journal field that is a string, or an array of byte
// values when the field is not valid UTF-8, or null when it is too large.
type journalString string

func (s *journalString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = ""
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var bs []byte
		var ints []int
		if err := json.Unmarshal(b, &ints); err != nil {
			return err
		}
		bs = make([]byte, len(ints))
		for i, v := range ints {
			if v < 0 || v > 255 {
				return fmt.Errorf("byte value %d out of range", v)
			}
			bs[i] = byte(v)
		}
		*s = journalString(bs)
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return err
	}
	*s = journalString(str)
	return nil
}

// ParseJournalEntry decodes one journald JSON record.
func ParseJournalEntry(data []byte) (JournalEntry, error) {
	return journalEntry(string(data))
}

// journalEntry is ParseJournalEntry of a record held in a string, which
// the entry's fields share.
func journalEntry(s string) (JournalEntry, error) {
	if e, ok := scanJournal(s); ok {
		return e, nil
	}
	var e JournalEntry
	if err := json.Unmarshal([]byte(s), &e); err != nil {
		return e, fmt.Errorf("journal record: %w", err)
	}
	return e, nil
}

// scanJournal decodes a record as journalctl writes it, by hand: a flat
// object whose keys are journal field names (JournalFieldName) and whose
// values are strings without escapes, or null. For anything
// else (an escape, a byte array, another kind of value, malformed JSON)
// it says not ok, and encoding/json decodes the record; where it says ok,
// the entry is the one encoding/json gives (FuzzJournalEntry). On
// journalctl's usual record encoding/json took 3.6-4.3 µs and 16
// allocations, some forty times a syslog line's envelope; this 0.5-0.6
// µs and one (BenchmarkJournalEntry).
func scanJournal(s string) (e JournalEntry, ok bool) {
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return e, false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return e, skipSpace(s, i+1) == len(s)
	}
	for {
		key, j, ok := scanString(s, i)
		if !ok || !JournalFieldName(key) {
			return e, false
		}
		i = skipSpace(s, j)
		if i >= len(s) || s[i] != ':' {
			return e, false
		}
		i = skipSpace(s, i+1)
		if strings.HasPrefix(s[i:], "null") {
			e.setNull(key)
			i += len("null")
		} else {
			var val string
			if val, i, ok = scanString(s, i); !ok {
				return e, false
			}
			e.Set(key, val)
		}
		i = skipSpace(s, i)
		if i >= len(s) {
			return e, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			return e, skipSpace(s, i+1) == len(s)
		default:
			return e, false
		}
	}
}

// field returns the field of e that journal field name key fills, or nil.
func (e *JournalEntry) field(key string) *string {
	switch key {
	case "__CURSOR":
		return &e.Cursor
	case "__REALTIME_TIMESTAMP":
		return &e.Realtime
	case "_HOSTNAME":
		return &e.Hostname
	case "SYSLOG_IDENTIFIER":
		return &e.Identifier
	case "_COMM":
		return &e.Comm
	case "_PID":
		return &e.PID
	case "SYSLOG_PID":
		return &e.SyslogPID
	case "MESSAGE":
		return (*string)(&e.Message)
	}
	return nil
}

// IsJournalField reports whether a JournalEntry holds the journal field
// named key.
func IsJournalField(key string) bool {
	var e JournalEntry
	return e.field(key) != nil
}

// Set sets the field of e that journal field name key fills to val;
// other names are ignored.
func (e *JournalEntry) Set(key, val string) {
	if f := e.field(key); f != nil {
		*f = val
	}
}

// setNull is what encoding/json does with a null: nothing to a string,
// and journalString's UnmarshalJSON empties MESSAGE.
func (e *JournalEntry) setNull(key string) {
	if key == "MESSAGE" {
		e.Message = ""
	}
}

// scanString reads the JSON string at s[i] that holds no escape and no
// control character, and is valid UTF-8: its text and the index after it.
func scanString(s string, i int) (string, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return "", i, false
	}
	start, ascii := uint(i+1), true
	for j := start; j < uint(len(s)); j++ {
		c := s[j]
		if jsonPlain[c] {
			continue
		}
		switch {
		case c == '"':
			v := s[start:j]
			return v, int(j) + 1, ascii || utf8.ValidString(v)
		case c >= utf8.RuneSelf:
			ascii = false
		default: // an escape or a control character
			return "", int(j), false
		}
	}
	return "", len(s), false
}

// jsonPlain holds the bytes a JSON string holds as they are: not '"', '\\',
// a control character or a byte of a multi-byte UTF-8 sequence.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// JournalFieldName reports whether key is a journal field name:
// upper-case letters, digits and '_', at most 64 bytes, not starting with
// a digit. (For scanJournal: encoding/json matches keys to fields ignoring
// case, which for such names is matching them exactly.)
func JournalFieldName(key string) bool {
	if len(key) == 0 || len(key) > 64 || '0' <= key[0] && key[0] <= '9' {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// ParseJournal turns one journald JSON record into a Line.
func (p *Parser) ParseJournal(data []byte) (Line, error) {
	return p.journalRecord(string(data))
}

// journalRecord is ParseJournal of a record held in a string.
func (p *Parser) journalRecord(s string) (Line, error) {
	e, err := journalEntry(s)
	if err != nil {
		return Line{}, err
	}
	return p.JournalLine(e)
}

// JournalLine turns a decoded journal record into a Line.
func (p *Parser) JournalLine(e JournalEntry) (Line, error) {
	if e.Message == "" && e.Identifier == "" && e.Realtime == "" {
		return Line{}, errors.New("journal record has no MESSAGE")
	}
	l := Line{
		Host:    e.Hostname,
		Program: e.Identifier,
		Message: string(e.Message),
		Raw:     string(e.Message),
		Origin:  "journald",
	}
	if l.Program == "" {
		l.Program = e.Comm
	}
	if pid := e.SyslogPID; pid != "" {
		l.PID = atoi(pid)
	} else if e.PID != "" {
		l.PID = atoi(e.PID)
	}
	if l.PID < 0 {
		l.PID = 0
	}
	if e.Realtime != "" {
		us, err := strconv.ParseInt(e.Realtime, 10, 64)
		if err != nil {
			return Line{}, fmt.Errorf("journal record: bad __REALTIME_TIMESTAMP %q", e.Realtime)
		}
		l.Time = time.UnixMicro(us).In(p.loc())
	}
	if len(l.Message) > MaxLen {
		return l, ErrTooLong
	}
	return l, p.checkFuture(l.Time)
}
