package logline

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// JournalEntry is the part of a `journalctl --output=json` record Rampart uses.
type JournalEntry struct {
	Cursor     string        `json:"__CURSOR"`
	Realtime   string        `json:"__REALTIME_TIMESTAMP"` // µs since the epoch, as a string
	Hostname   string        `json:"_HOSTNAME"`
	Identifier string        `json:"SYSLOG_IDENTIFIER"`
	Comm       string        `json:"_COMM"`
	PID        string        `json:"_PID"`
	SyslogPID  string        `json:"SYSLOG_PID"`
	Unit       string        `json:"_SYSTEMD_UNIT"`
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
	var e JournalEntry
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("journal record: %w", err)
	}
	return e, nil
}

// ParseJournal turns one journald JSON record into a Line.
func (p *Parser) ParseJournal(data []byte) (Line, error) {
	e, err := ParseJournalEntry(data)
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
