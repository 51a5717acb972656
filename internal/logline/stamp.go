package logline

import (
	"strings"
	"time"
)

// stamp reads a time stamp at the start of s in one of the shapes daemons
// write, and returns the time and the text after it (and after one space).
// past reports a stamp dated by the clock (year-less, Parser.Year unset):
// such a stamp never lies in the future, so the caller need not read the
// clock again to check it. With lazy set, such a stamp is stored there and
// t left zero.
//
//	Nov 22 14:03:07            RFC 3164 (year-less), optional .fraction
//	Nov 22 2005 14:03:07       RFC 3164 with a year (network gear)
//	Tue Nov 22 14:03:07 2005   ctime
//	2005-11-22T14:03:07.123+01:00, 2005-11-22 14:03:07,123   ISO 8601
//	2005/11/22 14:03:07        nginx error log
//	[Tue Nov 22 14:03:07.123 2005]  Apache error log
//	051122 14:03:07            MySQL before 5.7
//	22-Nov-2005 14:03:07.123   BIND's log channels (print-time)
func (p *Parser) stamp(s string, lazy *Stamp) (t time.Time, rest string, ok, past bool) {
	if len(s) < 14 {
		return time.Time{}, s, false, false
	}
	switch c := s[0]; {
	case isLetter(c):
		if lazy == nil && p.Year == 0 {
			if t, ok := p.sameSecond(s); ok {
				return t, s[16:], true, true
			}
		}
		if mon, day, h, m, sec, ns, ok := plainRFC3164(s); ok {
			// The usual syslog stamp, then a space (see plainRFC3164).
			if lazy != nil && p.Year == 0 {
				*lazy = Stamp{mon: mon, day: day, h: h, m: m, sec: sec, nsec: ns}
				return time.Time{}, s[16:], true, true
			}
			t, past = p.yearless(mon, day, h, m, sec, ns)
			if past {
				p.rememberSecond(s, t, mon, day, h)
			}
			return t, s[16:], true, past
		}
		if t, rest, ok, past = p.rfc3164(s, lazy); !ok {
			if t, rest, ok = p.ctime(s); !ok {
				t, rest, ok = p.weekdayISO(s)
			}
		}
	case isDigit(c):
		if t, rest, ok = p.iso(s); !ok {
			if t, rest, ok = p.mysql(s); !ok {
				if t, rest, ok = p.dayMonYear(s); !ok {
					if t, rest, ok = p.yearMonDay(s); !ok {
						t, rest, ok = p.epoch(s)
					}
				}
			}
		}
	case c == '[':
		if t, rest, ok = p.ctime(s[1:]); ok {
			ok = strings.HasPrefix(rest, "]")
			rest = strings.TrimPrefix(rest, "]")
		} else {
			rest, ok = monotonic(s)
		}
	}
	switch {
	case !ok:
	case rest == "":
		return t, rest, true, past
	case rest[0] == ' ':
		return t, rest[1:], true, past
	}
	if lazy != nil {
		*lazy = Stamp{} // rfc3164 read a stamp, but not one followed by a space
	}
	return time.Time{}, s, false, false
}

func month(s string) (time.Month, bool) {
	if len(s) < 3 {
		return 0, false
	}
	// A switch on the three bytes as one number, not a map or a string
	// switch: this runs once per line.
	switch uint32(s[0])<<16 | uint32(s[1])<<8 | uint32(s[2]) {
	case 'J'<<16 | 'a'<<8 | 'n':
		return time.January, true
	case 'F'<<16 | 'e'<<8 | 'b':
		return time.February, true
	case 'M'<<16 | 'a'<<8 | 'r':
		return time.March, true
	case 'A'<<16 | 'p'<<8 | 'r':
		return time.April, true
	case 'M'<<16 | 'a'<<8 | 'y':
		return time.May, true
	case 'J'<<16 | 'u'<<8 | 'n':
		return time.June, true
	case 'J'<<16 | 'u'<<8 | 'l':
		return time.July, true
	case 'A'<<16 | 'u'<<8 | 'g':
		return time.August, true
	case 'S'<<16 | 'e'<<8 | 'p':
		return time.September, true
	case 'O'<<16 | 'c'<<8 | 't':
		return time.October, true
	case 'N'<<16 | 'o'<<8 | 'v':
		return time.November, true
	case 'D'<<16 | 'e'<<8 | 'c':
		return time.December, true
	}
	return 0, false
}

// rfc3164 reads "Mmm dd hh:mm:ss" (day padded with a space or not),
// optionally with a year before the time. past and lazy are as for stamp.
func (p *Parser) rfc3164(s string, lazy *Stamp) (t time.Time, rest string, ok, past bool) {
	mon, ok := month(s)
	if !ok || len(s) < 4 || s[3] != ' ' {
		return time.Time{}, s, false, false
	}
	s = s[4:]
	if len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	// The day: one or two digits (number(s, 1, 2) without its loop).
	var day int
	switch {
	case len(s) >= 2 && isDigit(s[0]) && isDigit(s[1]):
		day, s = int(s[0]-'0')*10+int(s[1]-'0'), s[2:]
	case len(s) >= 1 && isDigit(s[0]):
		day, s = int(s[0]-'0'), s[1:]
	default:
		return time.Time{}, s, false, false
	}
	if len(s) == 0 || s[0] != ' ' {
		return time.Time{}, s, false, false
	}
	s = s[1:]
	year := 0
	// A year is four digits and a space; the usual time ("hh:mm:ss") has
	// no space at s[4], so it is not read as digits first.
	if len(s) > 4 && s[4] == ' ' {
		if y, r, ok := number(s, 4, 4); ok {
			year, s = y, r[1:]
		}
	}
	h, m, sec, ns, s, ok := clock(s)
	if !ok {
		return time.Time{}, s, false, false
	}
	if year != 0 {
		if !validDate(year, mon, day) {
			return time.Time{}, s, false, false
		}
		return time.Date(year, mon, day, h, m, sec, ns, p.loc()), s, true, false
	}
	if !validDate(2000, mon, day) { // 2000 is a leap year
		return time.Time{}, s, false, false
	}
	if lazy != nil && p.Year == 0 {
		*lazy = Stamp{mon: mon, day: day, h: h, m: m, sec: sec, nsec: ns}
		return time.Time{}, s, true, true
	}
	t, past = p.yearless(mon, day, h, m, sec, ns)
	return t, s, true, past
}

// plainRFC3164 reads the stamp rsyslog writes by default, "Mmm dd
// hh:mm:ss" or "Mmm  d hh:mm:ss" and then a space, at its fixed offsets,
// as rfc3164 would read it, without its steps; ok is false for any other
// text, which stamp then gives rfc3164 to read the long way.
func plainRFC3164(s string) (mon time.Month, day, h, m, sec, ns int, ok bool) {
	if len(s) < 16 || s[3] != ' ' || s[6] != ' ' || s[9] != ':' || s[12] != ':' || s[15] != ' ' ||
		!isDigit(s[5]) || !isDigit(s[7]) || !isDigit(s[8]) || !isDigit(s[10]) || !isDigit(s[11]) ||
		!isDigit(s[13]) || !isDigit(s[14]) {
		return 0, 0, 0, 0, 0, 0, false
	}
	switch d := s[4]; {
	case d == ' ':
		day = int(s[5] - '0')
	case isDigit(d):
		day = int(d-'0')*10 + int(s[5]-'0')
	default:
		return 0, 0, 0, 0, 0, 0, false
	}
	if mon, ok = month(s); !ok || !validDate(2000, mon, day) { // 2000 is a leap year
		return 0, 0, 0, 0, 0, 0, false
	}
	h = int(s[7]-'0')*10 + int(s[8]-'0')
	m = int(s[10]-'0')*10 + int(s[11]-'0')
	sec = int(s[13]-'0')*10 + int(s[14]-'0')
	if h > 23 || m > 59 || sec > 60 {
		return 0, 0, 0, 0, 0, 0, false
	}
	if sec == 60 { // leap second: as clock reads it
		sec, ns = 59, 999_999_999
	}
	return mon, day, h, m, sec, ns, true
}

// datedSecond is a year-less stamp in the usual syslog form (see
// plainRFC3164) and the time yearless dated it to, with the hour it was
// dated in: the same 16 bytes date alike for as long as that hour holds
// for the clock.
type datedSecond struct {
	head, tail uint64 // the stamp and its space, as two little-endian words
	t          time.Time
	hour       *datedHour
}

// sameSecond returns the time of s's stamp when its first 16 bytes are
// the stamp Parser.second remembers, and the hour that stamp was dated in
// still holds for the clock, as yearless would check it.
func (p *Parser) sameSecond(s string) (time.Time, bool) {
	ds := p.second.Load()
	if ds == nil || len(s) < 16 || le64(s[:8]) != ds.head || le64(s[8:16]) != ds.tail {
		return time.Time{}, false
	}
	d := ds.hour
	if d.loc != p.loc() {
		return time.Time{}, false
	}
	if now := p.now(); now != d.now && (now.Before(d.from) || !now.Before(d.until)) {
		return time.Time{}, false
	}
	return ds.t, true
}

// rememberSecond remembers s's stamp, which yearless dated to t, when the
// Parser's hour is the one t was dated in (see sameSecond).
func (p *Parser) rememberSecond(s string, t time.Time, mon time.Month, day, h int) {
	d := p.hour.Load()
	if d == nil || d.mon != mon || d.day != day || d.hour != h || d.loc != p.loc() {
		return // an hour dated stamp by stamp (see dateHour)
	}
	if ds := p.second.Load(); ds == nil || ds.t != t || ds.hour != d {
		p.second.Store(&datedSecond{head: le64(s[:8]), tail: le64(s[8:16]), t: t, hour: d})
	}
}

// le64 returns the 8 bytes of s as a little-endian word (one load, once
// compiled). Comparing the stamp as a string instead calls memequal and
// cost replay 0.5% more instructions.
func le64(s string) uint64 {
	s = s[:8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// yearless dates a stamp without a year: Parser.Year if set, else the
// current year, or the one before when the stamp would lie in the future.
// past is true when the clock dated the stamp: the result then cannot lie
// more than a day ahead of it (the check Parse would otherwise repeat).
func (p *Parser) yearless(mon time.Month, day, h, m, sec, ns int) (t time.Time, past bool) {
	loc := p.loc()
	if p.Year != 0 {
		return time.Date(p.Year, mon, day, h, m, sec, ns, loc), false
	}
	now := p.now()
	within := time.Duration(m)*time.Minute + time.Duration(sec)*time.Second + time.Duration(ns)
	if d := p.hour.Load(); d != nil && d.mon == mon && d.day == day && d.hour == h && d.loc == loc &&
		(now == d.now || !now.Before(d.from) && now.Before(d.until)) {
		return d.start.Add(within), true
	}
	local := now.In(loc)
	t = time.Date(local.Year(), mon, day, h, m, sec, ns, loc)
	if t.After(now.Add(24 * time.Hour)) {
		t = time.Date(local.Year()-1, mon, day, h, m, sec, ns, loc)
	}
	if d := dateHour(local, mon, day, h, loc); d != nil {
		if !now.Before(d.from) && now.Before(d.until) {
			d.now = now // a clock that does not move (replay's) skips the check
		}
		p.hour.Store(d)
	}
	return t, true
}

// datedHour is how every stamp of one hour (mon day hh:..) is dated by a
// clock reading in [from, until): start plus the minutes and seconds.
type datedHour struct {
	mon         time.Month
	day, hour   int
	loc         *time.Location
	start       time.Time
	from, until time.Time
	now         time.Time // a clock reading in [from, until), or zero
}

// dateHour works out the datedHour for clock reading now (in loc), or
// returns nil for an hour that yearless must date stamp by stamp: one
// whose zone offset changes within it (a daylight saving switch), or in
// whose middle the one-day-ahead limit falls.
func dateHour(now time.Time, mon time.Month, day, h int, loc *time.Location) *datedHour {
	year := now.Year()
	yearStart := time.Date(year, time.January, 1, 0, 0, 0, 0, loc)
	yearEnd := time.Date(year+1, time.January, 1, 0, 0, 0, 0, loc)
	d := &datedHour{mon: mon, day: day, hour: h, loc: loc}
	start := time.Date(year, mon, day, h, 0, 0, 0, loc)
	end := start.Add(time.Hour) // the hour is [start, end)
	switch limit := now.Add(24 * time.Hour); {
	case !end.After(limit.Add(time.Nanosecond)):
		// The whole hour is at most a day ahead: this year, while the
		// clock stays in this year and at least as late as now.
		d.start, d.from, d.until = start, end.Add(-24*time.Hour), yearEnd
	case start.After(limit):
		// All of it is more than a day ahead: last year, while the clock
		// stays in this year and the hour stays more than a day ahead.
		d.start = time.Date(year-1, mon, day, h, 0, 0, 0, loc)
		end = d.start.Add(time.Hour)
		d.from, d.until = yearStart, start.Add(-24*time.Hour)
	default:
		return nil
	}
	if d.from.Before(yearStart) {
		d.from = yearStart
	}
	// A zone offset change within the hour (or a wall clock hour that does
	// not exist) would make start plus minutes differ from time.Date.
	if _, off1 := d.start.Zone(); d.start.Hour() != h {
		return nil
	} else if _, off2 := end.Add(-time.Nanosecond).Zone(); off1 != off2 {
		return nil
	}
	if !d.from.Before(d.until) {
		return nil
	}
	return d
}

// ctime reads "Www Mmm dd hh:mm:ss[.frac] yyyy".
func (p *Parser) ctime(s string) (time.Time, string, bool) {
	if len(s) < 24 || !isLetter(s[0]) || s[3] != ' ' {
		return time.Time{}, s, false
	}
	mon, day, s, ok := monthDay(s[4:])
	if !ok {
		return time.Time{}, s, false
	}
	h, m, sec, ns, s, ok := clock(s)
	if !ok || len(s) < 5 || s[0] != ' ' {
		return time.Time{}, s, false
	}
	year, s, ok := number(s[1:], 4, 4)
	if !ok {
		return time.Time{}, s, false
	}
	return time.Date(year, mon, day, h, m, sec, ns, p.loc()), s, validDate(year, mon, day)
}

// iso reads "yyyy-mm-dd[T ]hh:mm:ss[.,frac][Z|±hh[:]mm]" and "yyyy/mm/dd hh:mm:ss".
func (p *Parser) iso(s string) (time.Time, string, bool) {
	year, r, ok := number(s, 4, 4)
	if !ok || len(r) < 1 || (r[0] != '-' && r[0] != '/') {
		return time.Time{}, s, false
	}
	sep := r[0]
	mon, r, ok := number(r[1:], 2, 2)
	if !ok || len(r) < 1 || r[0] != sep {
		return time.Time{}, s, false
	}
	day, r, ok := number(r[1:], 2, 2)
	if !ok || len(r) < 1 || (r[0] != 'T' && r[0] != ' ') {
		return time.Time{}, s, false
	}
	h, m, sec, ns, r, ok := clock(r[1:])
	if !ok || !validDate(year, time.Month(mon), day) {
		return time.Time{}, s, false
	}
	loc := p.loc()
	switch {
	case strings.HasPrefix(r, "Z"):
		loc, r = time.UTC, r[1:]
	case len(r) >= 5 && (r[0] == '+' || r[0] == '-') && isDigit(r[1]):
		oh, rr, ok := number(r[1:], 2, 2)
		if !ok {
			return time.Time{}, s, false
		}
		rr = strings.TrimPrefix(rr, ":")
		om, rr, ok := number(rr, 2, 2)
		if !ok || oh > 23 || om > 59 {
			return time.Time{}, s, false
		}
		off := oh*3600 + om*60
		if r[0] == '-' {
			off = -off
		}
		loc, r = fixedZone(off), rr
	}
	return time.Date(year, time.Month(mon), day, h, m, sec, ns, loc), r, true
}

// mysql reads "yymmdd hh:mm:ss" with the hour padded by a space or not.
func (p *Parser) mysql(s string) (time.Time, string, bool) {
	d, r, ok := number(s, 6, 6)
	if !ok || len(r) < 2 || r[0] != ' ' {
		return time.Time{}, s, false
	}
	r = r[1:]
	if r[0] == ' ' {
		r = r[1:]
	}
	return p.dateTime(2000+d/10000, time.Month(d/100%100), d%100, r)
}

// dateTime reads the time of day at r and returns it on the date given,
// in the Parser's location, when that date is a real one. The text after
// it is returned only with ok.
func (p *Parser) dateTime(year int, mon time.Month, day int, r string) (time.Time, string, bool) {
	h, m, sec, ns, r, ok := clock(r)
	if !ok || !validDate(year, mon, day) {
		return time.Time{}, r, false
	}
	return time.Date(year, mon, day, h, m, sec, ns, p.loc()), r, true
}

// monthDay reads "Mmm dd " with the day padded by a space or not, and
// returns the text after it.
func monthDay(s string) (time.Month, int, string, bool) {
	mon, ok := month(s)
	if !ok || len(s) < 4 || s[3] != ' ' {
		return 0, 0, s, false
	}
	s = s[4:]
	if len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	day, s, ok := number(s, 1, 2)
	if !ok || len(s) == 0 || s[0] != ' ' {
		return 0, 0, s, false
	}
	return mon, day, s[1:], true
}

// dayMonYear reads "dd-Mmm-yyyy hh:mm:ss[.fff]", which BIND writes in its
// log channels (isc_time_formattimestamp).
func (p *Parser) dayMonYear(s string) (time.Time, string, bool) {
	day, r, ok := number(s, 2, 2)
	if !ok || len(r) < 13 || r[0] != '-' || r[4] != '-' {
		return time.Time{}, s, false
	}
	mon, ok := month(r[1:4])
	if !ok {
		return time.Time{}, s, false
	}
	year, r, ok := number(r[5:], 4, 4)
	if !ok || len(r) < 1 || r[0] != ' ' {
		return time.Time{}, s, false
	}
	return p.dateTime(year, mon, day, r[1:])
}

// weekdayISO reads "Www yyyy-mm-dd hh:mm:ss[.frac] ZONE", as journalctl
// -o short-full writes it (systemd time-util.c format_timestamp_style):
// ZONE is "UTC" (--utc), a numeric "+03", or the local zone's abbreviation,
// read as Parser.Location. The zone may be left out.
func (p *Parser) weekdayISO(s string) (time.Time, string, bool) {
	if len(s) < 23 || s[3] != ' ' || !isDigit(s[4]) {
		return time.Time{}, s, false
	}
	t, r, ok := p.iso(s[4:])
	if !ok || s[14] != ' ' || len(r) < 1 || r[0] != ' ' {
		return time.Time{}, s, false
	}
	zone, _, _ := cutSpace(r[1:])
	var loc *time.Location // nil: the Parser's, as iso read it
	switch {
	case zone == "UTC" || zone == "GMT":
		loc = time.UTC
	case zone != "" && (zone[0] == '+' || zone[0] == '-'):
		off, ok := hourOffset(zone)
		if !ok {
			return t, r, true // no zone: the next word is the host
		}
		loc = fixedZone(off)
	case strings.TrimLeft(zone, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "":
		return t, r, true // no zone: the next word is the host
	}
	if loc != nil {
		t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
	}
	return t, r[1+len(zone):], true
}

// hourOffset reads journalctl's numeric zone, "+hh" or "+hhmm", in seconds.
func hourOffset(z string) (int, bool) {
	n, rest, ok := number(z[1:], 2, 4)
	if !ok || rest != "" || len(z) == 4 {
		return 0, false
	}
	off := n * 3600
	if len(z) == 5 {
		off = n/100*3600 + n%100*60
	}
	if z[0] == '-' {
		off = -off
	}
	return off, true
}

// yearMonDay reads "yyyy Mmm dd hh:mm:ss[.frac]" (day padded with a
// space), syslog-ng's ts_format(full) (lib/timeutils/format.c).
func (p *Parser) yearMonDay(s string) (time.Time, string, bool) {
	year, r, ok := number(s, 4, 4)
	if !ok || len(r) < 13 || r[0] != ' ' {
		return time.Time{}, s, false
	}
	mon, day, r, ok := monthDay(r[1:])
	if !ok {
		return time.Time{}, s, false
	}
	return p.dateTime(year, mon, day, r)
}

// epoch reads "ssssssssss[.frac]", ten digits of seconds since 1970:
// journalctl -o short-unix ("%10"PRI_TIME".%06"PRIu64, logs-show.c) and
// syslog-ng's ts_format(unix).
func (p *Parser) epoch(s string) (time.Time, string, bool) {
	sec, r, ok := number(s, 10, 10)
	if !ok {
		return time.Time{}, s, false
	}
	ns := 0
	if len(r) > 1 && r[0] == '.' && isDigit(r[1]) {
		var rest string
		ns, rest = fraction(r[1:])
		if len(r)-len(rest) > 10 { // more than nanoseconds
			return time.Time{}, s, false
		}
		r = rest
	}
	t := time.Unix(int64(sec), int64(ns))
	if len(r) > 0 && r[0] != ' ' || t.After(p.now().Add(24*time.Hour)) {
		return time.Time{}, s, false // a number, not a stamp
	}
	return t.In(p.loc()), r, true
}

// monotonic skips "[sssss.uuuuuu]", journalctl -o short-monotonic's
// seconds since boot ("[%5"PRI_USEC".%06"PRI_USEC"]", logs-show.c
// output_timestamp_monotonic): no wall clock time, so the time stays zero.
func monotonic(s string) (string, bool) {
	i := 1
	for i < len(s) && s[i] == ' ' {
		i++
	}
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j == i || len(s) < j+8 || s[j] != '.' || s[j+7] != ']' {
		return s, false
	}
	for k := j + 1; k < j+7; k++ {
		if !isDigit(s[k]) {
			return s, false
		}
	}
	return s[j+8:], true
}

// findCLFStamp finds "[dd/Mmm/yyyy:hh:mm:ss ±zzzz]" (common log format) in s.
func (p *Parser) findCLFStamp(s string) (time.Time, bool) {
	for i := 0; i < len(s) && i < 512; {
		j := strings.IndexByte(s[i:], '[')
		if j < 0 {
			return time.Time{}, false
		}
		i += j + 1
		if t, ok := parseCLF(s[i:]); ok {
			return t, true
		}
	}
	return time.Time{}, false
}

func parseCLF(s string) (time.Time, bool) {
	if len(s) < 27 || s[2] != '/' || s[6] != '/' || s[11] != ':' || s[20] != ' ' || s[26] != ']' {
		return time.Time{}, false
	}
	day, _, ok1 := number(s[:2], 2, 2)
	mon, ok2 := month(s[3:6])
	year, _, ok3 := number(s[7:11], 4, 4)
	h, m, sec, ns, r, ok4 := clock(s[12:20])
	oh, _, ok5 := number(s[22:24], 2, 2)
	om, _, ok6 := number(s[24:26], 2, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || r != "" || (s[21] != '+' && s[21] != '-') || !validDate(year, mon, day) {
		return time.Time{}, false
	}
	off := oh*3600 + om*60
	if s[21] == '-' {
		off = -off
	}
	return time.Date(year, mon, day, h, m, sec, ns, fixedZone(off)), true
}

// clock reads "hh:mm:ss" (hour may be one digit) and an optional ".frac" or ",frac".
func clock(s string) (h, m, sec, ns int, rest string, ok bool) {
	if len(s) >= 8 && s[2] == ':' && s[5] == ':' && isDigit(s[0]) && isDigit(s[1]) &&
		isDigit(s[3]) && isDigit(s[4]) && isDigit(s[6]) && isDigit(s[7]) {
		// The usual "hh:mm:ss", read without number's loops.
		h = int(s[0]-'0')*10 + int(s[1]-'0')
		m = int(s[3]-'0')*10 + int(s[4]-'0')
		sec = int(s[6]-'0')*10 + int(s[7]-'0')
		s = s[8:]
	} else {
		h, m, sec, s, ok = clockSlow(s)
		if !ok {
			return 0, 0, 0, 0, s, false
		}
	}
	if h > 23 || m > 59 || sec > 60 {
		return 0, 0, 0, 0, s, false
	}
	if sec == 60 { // leap second: keep the moment inside its minute
		sec, ns = 59, 999_999_999
	}
	if len(s) > 1 && (s[0] == '.' || s[0] == ',') && isDigit(s[1]) {
		frac, rest := fraction(s[1:])
		if ns == 0 {
			ns = frac
		}
		s = rest
	}
	return h, m, sec, ns, s, true
}

// fraction reads the digits of a second's fraction at s (nanoseconds: the
// first nine count) and returns the text after them.
func fraction(s string) (ns int, rest string) {
	i, scale := 0, 100_000_000
	for ; i < len(s) && isDigit(s[i]); i++ {
		if scale > 0 {
			ns += int(s[i]-'0') * scale
			scale /= 10
		}
	}
	return ns, s[i:]
}

// clockSlow reads "h:mm:ss" or "hh:mm:ss" without range checks.
func clockSlow(s string) (h, m, sec int, rest string, ok bool) {
	h, s, ok = number(s, 1, 2)
	if !ok || len(s) < 1 || s[0] != ':' {
		return 0, 0, 0, s, false
	}
	m, s, ok = number(s[1:], 2, 2)
	if !ok || len(s) < 1 || s[0] != ':' {
		return 0, 0, 0, s, false
	}
	sec, s, ok = number(s[1:], 2, 2)
	return h, m, sec, s, ok
}

// number reads between min and max decimal digits.
func number(s string, min, max int) (int, string, bool) {
	n, i := 0, 0
	for ; i < len(s) && i < max && isDigit(s[i]); i++ {
		n = n*10 + int(s[i]-'0')
	}
	if i < min {
		return 0, s, false
	}
	return n, s[i:], true
}

func validDate(year int, mon time.Month, day int) bool {
	if mon < 1 || mon > 12 || day < 1 {
		return false
	}
	if mon == time.February && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		return day <= 29
	}
	return day <= int(daysIn[mon])
}

// daysIn is the length of each month in a common year.
var daysIn = [13]uint8{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// fixedZone returns a zone for a UTC offset in seconds; common offsets are shared.
func fixedZone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	return time.FixedZone("", off)
}
