package logline

import (
	"errors"
	"strings"
	"sync/atomic"
	"time"
)

// Parser finds the envelope of log records. The zero value reads stamps
// without a zone in the local zone and dates year-less stamps by the clock.
type Parser struct {
	// Location is the zone of stamps that carry none; nil means time.Local.
	Location *time.Location
	// Year dates year-less stamps (RFC 3164). Zero means the current year,
	// rolled back by one for stamps that would lie more than a day ahead.
	Year int
	// Now is the clock used for year-less stamps and future checks; nil means time.Now.
	Now func() time.Time

	// hour remembers how the last year-less stamp's hour was dated, so
	// the next stamp of that hour costs no calendar arithmetic. It is
	// replaced, never modified, so a Parser stays safe for concurrent use.
	hour atomic.Pointer[datedHour]
	// second remembers the last such stamp read in the usual syslog form
	// and what it was dated to: a flood's lines mostly share their
	// second, and the next stamp of it costs a comparison. Replaced, never
	// modified, like hour.
	second atomic.Pointer[datedSecond]
}

func (p *Parser) loc() *time.Location {
	if p.Location != nil {
		return p.Location
	}
	return time.Local
}

func (p *Parser) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Parse parses one record (without its line terminator). It fails only for
// records that cannot be used at all (see the Err values); a record with no
// recognisable envelope is returned whole as the Message.
func (p *Parser) Parse(raw string) (l Line, err error) {
	err = p.parse(&l, raw, nil)
	return l, err
}

// ParseInto is Parse into *l, every field of which it sets (Origin to
// "", Read to zero). Replay parses each line into the reader's current line, which lives
// on the heap: a Line returned and copied there was 112 bytes moved, and
// while the collector marks, a write barrier over all of them.
func (p *Parser) ParseInto(l *Line, raw string) error {
	return p.parse(l, raw, nil)
}

// Stamp is a year-less time stamp that ParseLazy read but did not date.
// The zero Stamp stands for none.
type Stamp struct {
	mon                  time.Month
	day, h, m, sec, nsec int
}

// ParseLazy is Parse, except that a year-less stamp the clock would date
// (Parser.Year unset) is read and checked but not dated: the Line's Time
// is left zero and the Stamp returned holds it for Date. Such a stamp never
// lies in the future, so ParseLazy fails exactly where Parse fails. Dating
// takes calendar arithmetic and a clock reading: a caller that drops most
// lines (rampart test) dates only those it keeps.
func (p *Parser) ParseLazy(raw string) (Line, Stamp, error) {
	var st Stamp
	var l Line
	err := p.parse(&l, raw, &st)
	return l, st, err
}

// Date dates a Stamp from ParseLazy as Parse would have dated it with the
// clock reading now; the zero Stamp gives the zero Time.
func (p *Parser) Date(st Stamp) time.Time {
	if st == (Stamp{}) {
		return time.Time{}
	}
	t, _ := p.yearless(st.mon, st.day, st.h, st.m, st.sec, st.nsec)
	return t
}

// parse is ParseInto; with lazy set, a year-less stamp the clock would
// date is stored there instead (see ParseLazy). The Line is built in place:
// its fields are set one by one, never copied whole (see ParseInto).
func (p *Parser) parse(l *Line, raw string, lazy *Stamp) error {
	for len(raw) > 0 && (raw[len(raw)-1] == '\n' || raw[len(raw)-1] == '\r') {
		raw = raw[:len(raw)-1]
	}
	l.Time, l.Host, l.Program, l.PID, l.Origin, l.Read, l.Repeats = time.Time{}, "", "", 0, "", time.Time{}, 0
	l.Raw, l.Message = raw, raw
	switch {
	case len(raw) == 0:
		return ErrEmpty
	case len(raw) > MaxLen:
		return ErrTooLong
	case strings.IndexByte(raw, 0) >= 0:
		return ErrBinary
	case raw[0] == '{':
		// A record that is not journal JSON is read as plain text below.
		if jl, jerr := p.journalRecord(raw); jerr == nil || errors.Is(jerr, ErrFuture) || errors.Is(jerr, ErrTooLong) {
			*l = jl
			l.Raw = raw
			return jerr
		}
	}
	rest := raw
	if r, ok := skipPRI(rest); ok {
		rest = r
		if strings.HasPrefix(rest, "1 ") {
			if ok := p.parse5424(l, rest[2:]); ok {
				return p.checkFuture(l.Time)
			}
		}
	}
	t, after, stamped, past := p.stamp(rest, lazy)
	if stamped {
		l.Time = t
		rest = after
	}
	if h, prog, pid, msg, ok := splitTag(rest); ok {
		if len(msg) > 0 && msg[0] == 'm' { // rarely: see unrepeat
			msg, l.Repeats = unrepeat(msg)
		}
		l.Host, l.Program, l.PID, l.Message = h, prog, pid, msg
		if past {
			return nil
		}
		return p.checkFuture(l.Time)
	}
	if !stamped {
		// Web access logs put the stamp after the client address.
		if t, ok := p.findCLFStamp(raw); ok {
			l.Time = t
		}
	}
	l.Message = rest
	return p.checkFuture(l.Time)
}

// unrepeat returns the message rsyslog's repeated-message reduction wraps
// in "message repeated N times: [ msg]" (runtime/ratelimit.c; the space is
// the one that followed the tag, and msg is cut at 800 bytes) and N; else
// msg and 0.
func unrepeat(msg string) (string, int) {
	const pre = "message repeated "
	if len(msg) < len(pre) || msg[:len(pre)] != pre || msg[len(msg)-1] != ']' {
		return msg, 0
	}
	n, rest, ok := number(msg[len(pre):], 1, 9)
	if !ok || n == 0 || !strings.HasPrefix(rest, " times: [") {
		return msg, 0
	}
	return strings.TrimPrefix(rest[len(" times: ["):len(rest)-1], " "), n
}

// checkFuture returns ErrFuture for a time more than a day ahead of the
// clock.
func (p *Parser) checkFuture(t time.Time) error {
	if !t.IsZero() && t.After(p.now().Add(24*time.Hour)) {
		return ErrFuture
	}
	return nil
}

// skipPRI strips a leading "<NNN>" priority.
func skipPRI(s string) (string, bool) {
	if len(s) < 3 || s[0] != '<' {
		return s, false
	}
	for i := 1; i < len(s) && i <= 4; i++ {
		c := s[i]
		if c == '>' && i > 1 {
			return s[i+1:], true
		}
		if c < '0' || c > '9' {
			return s, false
		}
	}
	return s, false
}

// parse5424 parses "TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG".
func (p *Parser) parse5424(l *Line, s string) bool {
	fields := make([]string, 0, 5)
	for range 5 {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			return false
		}
		fields = append(fields, s[:i])
		s = s[i+1:]
	}
	if fields[0] != "-" {
		t, rest, ok := p.iso(fields[0])
		if !ok || rest != "" {
			return false
		}
		l.Time = t
	}
	if fields[1] != "-" {
		l.Host = fields[1]
	}
	if fields[2] != "-" {
		l.Program = fields[2]
	}
	if fields[3] != "-" {
		l.PID = atoi(fields[3])
	}
	// Structured data: "-" or one or more [id k="v" ...] elements, where
	// values may hold escaped quotes and brackets.
	if strings.HasPrefix(s, "-") {
		s = s[1:]
	} else {
		for strings.HasPrefix(s, "[") {
			end := sdEnd(s)
			if end < 0 {
				return false
			}
			s = s[end:]
		}
	}
	s = strings.TrimPrefix(s, " ")
	s = strings.TrimPrefix(s, "\ufeff") // BOM before a UTF-8 MSG
	// rsyslog's RSYSLOG_SyslogProtocol23Format writes the MSG of a message
	// it read as RFC 3164 with the space that followed its tag: "- -  text".
	s = strings.TrimPrefix(s, " ")
	l.Message = s
	return true
}

// sdEnd returns the index after the structured-data element that s starts with.
func sdEnd(s string) int {
	inQuote := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"':
			inQuote = !inQuote
		case c == ']' && !inQuote:
			return i + 1
		}
	}
	return -1
}

// splitTag splits "host prog[pid]: msg", "prog[pid]: msg", "host prog: msg"
// and "host prog[pid] msg" (proftpd). The program must start with a letter.
func splitTag(s string) (host, prog string, pid int, msg string, ok bool) {
	if host, prog, pid, msg, ok := splitHostTag(s); ok {
		return host, prog, pid, msg, true
	}
	return splitTagAny(s)
}

// splitHostTag reads the envelope nearly every syslog line has, "host
// prog[pid]: msg" or "host prog: msg", in one pass. It is splitTagAny for
// those shapes: where it says ok, splitTagAny returns the same; it says
// not ok for any other shape (which splitTagAny then reads), such as a
// program with "(facility)", a missing pid, or a host ending in ':'.
func splitHostTag(s string) (host, prog string, pid int, msg string, ok bool) {
	// Indexes are unsigned and compared with <, so that the compiler
	// proves every s[i] in bounds: no bounds checks.
	end := uint(len(s))
	// The host: a run of host bytes, then one space.
	i := uint(0)
	for i < end && envClass[s[i]]&envHost != 0 {
		i++
	}
	if i == 0 || i > maxHost || i >= end || s[i] != ' ' || s[i-1] == ':' {
		return "", "", 0, "", false
	}
	host = s[:i]
	// The program: a letter, then a run of program bytes.
	j := i + 1
	if j >= end || envClass[s[j]]&envLetter == 0 {
		return "", "", 0, "", false
	}
	k := j + 1
	for k < end && envClass[s[k]]&envProg != 0 {
		k++
	}
	prog = s[j:k]
	// "[pid]" then an optional ':', or just ':'.
	switch {
	case k < end && s[k] == '[':
		d := k + 1
		for d < end && isDigit(s[d]) {
			pid = pid*10 + int(s[d]-'0')
			d++
		}
		if n := d - (k + 1); n == 0 || n > 9 || d >= end || s[d] != ']' {
			return "", "", 0, "", false
		}
		k = d + 1
		if k < end && s[k] == ':' {
			k++
		}
	case k < end && s[k] == ':':
		k++
	default:
		return "", "", 0, "", false
	}
	// The tag ends the record or is followed by a space.
	switch {
	case k >= end:
		return host, prog, pid, "", true
	case s[k] == ' ':
		return host, prog, pid, s[k+1:], true
	}
	return "", "", 0, "", false
}

// Byte classes of the envelope, for splitHostTag.
const (
	envHost   = 1 << iota // may be in a host name (validHost)
	envProg               // may follow a program name's first byte (parseTag)
	envLetter             // may start a program name
)

var envClass = func() (t [256]uint8) {
	for i := range 256 {
		c := byte(i)
		if isLetter(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == ':' {
			t[c] |= envHost
		}
		if isLetter(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '/' || c == '@' {
			t[c] |= envProg
		}
		if isLetter(c) {
			t[c] |= envLetter
		}
	}
	return t
}()

// maxHost is the longest host name validHost accepts.
const maxHost = 255

// splitTagAny is splitTag for every shape it accepts.
func splitTagAny(s string) (host, prog string, pid int, msg string, ok bool) {
	first, rest, found := cutSpace(s)
	if !found {
		return "", "", 0, "", false
	}
	if prog, pid, ok := parseTag(first, true); ok {
		return "", prog, pid, rest, true
	}
	if !validHost(first) {
		return "", "", 0, "", false
	}
	second, msg, found := cutSpace(rest)
	if !found {
		second, msg = rest, ""
	}
	if prog, pid, ok := parseTag(second, false); ok {
		return first, prog, pid, msg, true
	}
	// busybox syslogd writes "facility.priority" between host and tag
	// (sysklogd/syslogd.c, timestamp_and_log).
	if found && isFacPrio(second) {
		third, msg, found := cutSpace(msg)
		if !found {
			third, msg = msg, ""
		}
		if prog, pid, ok := parseTag(third, false); ok {
			return first, prog, pid, msg, true
		}
	}
	return "", "", 0, "", false
}

// isFacPrio reports whether s is "facility.priority" as busybox names
// them (the first name of each value in syslog.h's tables).
func isFacPrio(s string) bool {
	fac, pri, ok := strings.Cut(s, ".")
	if !ok {
		return false
	}
	switch pri {
	case "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug":
	default:
		return false
	}
	switch fac {
	case "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
		"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7":
		return true
	}
	return false
}

// cutSpace is strings.Cut(s, " ") for the short words of an envelope, where
// a plain loop beats the vectorised search.
func cutSpace(s string) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// parseTag parses "prog:", "prog[pid]:", "prog(x)[pid]:" and, unless
// needColon, "prog[pid]" without the colon.
func parseTag(t string, needColon bool) (string, int, bool) {
	colon := strings.HasSuffix(t, ":")
	if colon {
		t = t[:len(t)-1]
	}
	pid := 0
	hasPID := false
	if strings.HasSuffix(t, "]") {
		i := strings.LastIndexByte(t, '[')
		if i <= 0 {
			return "", 0, false
		}
		pid = atoi(t[i+1 : len(t)-1])
		if pid < 0 {
			return "", 0, false
		}
		t = t[:i]
		hasPID = true
	}
	if !colon && (needColon || !hasPID) {
		return "", 0, false
	}
	// "(facility)", as in "vsftpd(pam_unix)[15522]:". A list is not one:
	// Dovecot 2.4 starts an auth process's lines in a log file with
	// "auth(user,address,sasl:mech):", which is the message, not a tag.
	if i := strings.IndexByte(t, '('); i > 0 && strings.HasSuffix(t, ")") && !strings.Contains(t[i:], ",") {
		t = t[:i]
	}
	if t == "" || !isLetter(t[0]) {
		return "", 0, false
	}
	for i := 1; i < len(t); i++ {
		c := t[i]
		if !isLetter(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '/' && c != '@' {
			return "", 0, false
		}
	}
	return t, pid, true
}

func validHost(h string) bool {
	if h == "" || len(h) > maxHost {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !isLetter(c) && !isDigit(c) && c != '-' && c != '.' && c != '_' && c != ':' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// atoi parses a short unsigned decimal; -1 when s is not one.
func atoi(s string) int {
	if s == "" || len(s) > 9 {
		return -1
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return -1
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}
