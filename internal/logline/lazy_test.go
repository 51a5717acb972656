package logline

import (
	"testing"
	"time"
)

// checkLazy checks that ParseLazy then Date gives what Parse gives, for a
// Parser dating by the clock and one with a Year.
func checkLazy(t *testing.T, raw string) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	for _, p := range []*Parser{
		{Location: time.UTC, Now: func() time.Time { return now }},
		{Location: time.UTC, Year: 2025, Now: func() time.Time { return now }},
	} {
		want, werr := p.Parse(raw)
		got, st, gerr := p.ParseLazy(raw)
		if got.Time.IsZero() {
			got.Time = p.Date(st)
		} else if st != (Stamp{}) {
			t.Errorf("ParseLazy(%q): both a Time and a Stamp", raw)
		}
		// Equal times, and zones alike (fixedZone makes a new Location each time).
		sameTime := got.Time.Equal(want.Time) && got.Time.String() == want.Time.String()
		got.Time, want.Time = time.Time{}, time.Time{}
		if !sameTime || got != want || gerr != werr {
			t.Errorf("ParseLazy(%q) then Date (year %d) = %+v, %v; Parse: %+v, %v", raw, p.Year, got, gerr, want, werr)
		}
	}
}

func TestParseLazy(t *testing.T) {
	for _, raw := range benchLines {
		checkLazy(t, raw)
	}
	for _, raw := range []string{
		"Mar 11 14:03:07 host sshd[1]: m", "Mar 12 14:03:07 host sshd[1]: m", "Dec 31 23:59:60 host sshd[1]: m",
		"Feb 29 11:00:00 host sshd[1]: m", "Mar  8 1:02:03 host x: m", "Mar  8 01:02:03.5 host x: m",
		"Mar  8 06:25:04 not a tag", "Mar  8 06:25:04", "Mar 8 2025 06:25:04 host x: m", "", "Mar 32 01:02:03 h x: m",
	} {
		checkLazy(t, raw)
	}
}

func FuzzParseLazy(f *testing.F) {
	for _, raw := range benchLines {
		f.Add(raw)
	}
	f.Fuzz(checkLazy)
}

// refClock is clock as first written, with number's loops throughout.
func refClock(s string) (h, m, sec, ns int, rest string, ok bool) {
	h, s, ok = number(s, 1, 2)
	if !ok || len(s) < 1 || s[0] != ':' {
		return 0, 0, 0, 0, s, false
	}
	m, s, ok = number(s[1:], 2, 2)
	if !ok || len(s) < 1 || s[0] != ':' {
		return 0, 0, 0, 0, s, false
	}
	sec, s, ok = number(s[1:], 2, 2)
	if !ok || h > 23 || m > 59 || sec > 60 {
		return 0, 0, 0, 0, s, false
	}
	if sec == 60 {
		sec, ns = 59, 999_999_999
	}
	if len(s) > 1 && (s[0] == '.' || s[0] == ',') && isDigit(s[1]) {
		i, scale := 1, 100_000_000
		frac := 0
		for ; i < len(s) && isDigit(s[i]); i++ {
			if scale > 0 {
				frac += int(s[i]-'0') * scale
				scale /= 10
			}
		}
		if ns == 0 {
			ns = frac
		}
		s = s[i:]
	}
	return h, m, sec, ns, s, true
}

func FuzzClock(f *testing.F) {
	for _, s := range []string{"14:03:07", "1:02:03 x", "23:59:60.5", "24:00:00", "12:60:00", "12:34:5", "12:34:56,123456789123"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, m, sec, ns, rest, ok := clock(s)
		wh, wm, wsec, wns, wrest, wok := refClock(s)
		if ok != wok || ok && (h != wh || m != wm || sec != wsec || ns != wns || rest != wrest) {
			t.Errorf("clock(%q) = %d %d %d %d %q %v, want %d %d %d %d %q %v", s, h, m, sec, ns, rest, ok, wh, wm, wsec, wns, wrest, wok)
		}
	})
}

// refRFC3164 is Parser.rfc3164 as first written: the month by a string
// switch, the day and the year read by number.
func refRFC3164(p *Parser, s string, lazy *Stamp) (t time.Time, rest string, ok, past bool) {
	mon, ok := refMonth(s)
	if !ok || len(s) < 4 || s[3] != ' ' {
		return time.Time{}, s, false, false
	}
	s = s[4:]
	if len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	day, s, ok := number(s, 1, 2)
	if !ok || len(s) == 0 || s[0] != ' ' {
		return time.Time{}, s, false, false
	}
	s = s[1:]
	year := 0
	if y, r, ok := number(s, 4, 4); ok && len(r) > 0 && r[0] == ' ' {
		year, s = y, r[1:]
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
	if !validDate(2000, mon, day) {
		return time.Time{}, s, false, false
	}
	if lazy != nil && p.Year == 0 {
		*lazy = Stamp{mon: mon, day: day, h: h, m: m, sec: sec, nsec: ns}
		return time.Time{}, s, true, true
	}
	t, past = p.yearless(mon, day, h, m, sec, ns)
	return t, s, true, past
}

func refMonth(s string) (time.Month, bool) {
	if len(s) < 3 {
		return 0, false
	}
	for m := time.January; m <= time.December; m++ {
		if s[:3] == m.String()[:3] {
			return m, true
		}
	}
	return 0, false
}

func FuzzRFC3164(f *testing.F) {
	for _, s := range []string{"Nov 22 14:03:07 h", "Feb  5 01:31:41 x", "Mar 7 02:09:33", "Nov 22 2005 14:03:07 x",
		"Feb 29 00:00:00", "Feb 29 2023 00:00:00", "Jun 1 1:02:03", "May 12 12:34:56.789 x", "Dec 3112:00:00", "Jan 1  2005 1:00:00",
		"Jun 30 23:59:60 x", "Mar  0 01:02:03 x", "Feb 30 01:02:03 x", "Apr 07 24:00:00 x", "Apr 07 23:60:00 x", "Sep  9 09:09:09  x"} {
		f.Add(s)
	}
	p := testParser()
	f.Fuzz(func(t *testing.T, s string) {
		for _, lazy := range []bool{false, true} {
			var st, wst Stamp
			pst, pwst := &st, &wst
			if !lazy {
				pst, pwst = nil, nil
			}
			tm, rest, ok, past := p.rfc3164(s, pst)
			wtm, wrest, wok, wpast := refRFC3164(p, s, pwst)
			if ok != wok || ok && (!tm.Equal(wtm) || rest != wrest || past != wpast || st != wst) {
				t.Errorf("rfc3164(%q, lazy %v) = %v %q %v %v %+v, want %v %q %v %v %+v", s, lazy, tm, rest, ok, past, st, wtm, wrest, wok, wpast, wst)
			}
		}
	})
}

// FuzzPlainRFC3164 checks that where plainRFC3164 reads a stamp, rfc3164
// as first written reads the same, and a space after it.
func FuzzPlainRFC3164(f *testing.F) {
	for _, s := range []string{"Nov 22 14:03:07 h", "Feb  5 01:31:41 x", "Jun 30 23:59:60 x", "Mar  0 01:02:03 x",
		"Feb 30 01:02:03 x", "Feb 29 01:02:03 x", "Apr 07 24:00:00 x", "Apr 07 23:60:00 x", "Xyz 07 23:00:00 x", "Apr 7  23:00:00 x"} {
		f.Add(s)
	}
	p := testParser()
	f.Fuzz(func(t *testing.T, s string) {
		mon, day, h, m, sec, ns, ok := plainRFC3164(s)
		var st Stamp
		_, rest, wok, _ := refRFC3164(p, s, &st)
		if !ok {
			return
		}
		want := Stamp{mon: mon, day: day, h: h, m: m, sec: sec, nsec: ns}
		if !wok || st != want || rest != s[15:] || rest[0] != ' ' {
			t.Errorf("plainRFC3164(%q) = %+v, rfc3164 %v %+v rest %q", s, want, wok, st, rest)
		}
	})
}
