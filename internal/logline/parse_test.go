package logline

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func testParser() *Parser {
	zurich, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		panic(err)
	}
	return &Parser{
		Location: zurich,
		Now:      func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, zurich) },
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		raw                string
		time               string // RFC 3339 with nanoseconds, "" for none
		host, program, msg string
		pid                int
	}{
		{"Nov 22 14:03:07 host sshd[123]: Failed password for root", "2026-11-22T14:03:07+01:00", "host", "sshd", "Failed password for root", 123},
		{"Feb  5 01:31:41 www sshd[1643]: ROOT LOGIN REFUSED", "2026-02-05T01:31:41+01:00", "www", "sshd", "ROOT LOGIN REFUSED", 1643},
		{"Mar 7 02:09:33 server postfix/smtpd[27246]: x", "2026-03-07T02:09:33+01:00", "server", "postfix/smtpd", "x", 27246},
		{"Aug 14 11:59:59 server dovecot: imap-login: Login", "2026-08-14T11:59:59+02:00", "server", "dovecot", "imap-login: Login", 0},
		{"Feb 6 12:02:29 server vsftpd(pam_unix)[15522]: authentication failure", "2026-02-06T12:02:29+01:00", "server", "vsftpd", "authentication failure", 15522},
		{"Nov 23 11:01:06 auth(bob@example.org,203.0.113.56,sasl:plain): Info: sql: Password mismatch", "2026-11-23T11:01:06+01:00", "", "", "auth(bob@example.org,203.0.113.56,sasl:plain): Info: sql: Password mismatch", 0},
		{"Jan 10 00:00:00 myhost proftpd[12345] myhost.domain.com (a[1.2.3.4]): USER x", "2026-01-10T00:00:00+01:00", "myhost", "proftpd", "myhost.domain.com (a[1.2.3.4]): USER x", 12345},
		{"srv sshd[13709]: error: PAM: Authentication failure", "", "srv", "sshd", "error: PAM: Authentication failure", 13709},
		{"<38>1 2019-07-08T17:40:17.954167-04:00 hostname.example.com sshd 55555 - [timeQuality tzKnown=\"1\"][x@1 t=\"[b\\\"]\"] Failed unknown", "2019-07-08T17:40:17.954167-04:00", "hostname.example.com", "sshd", "Failed unknown", 55555},
		{"<13>Nov 22 14:03:07 host sshd[1]: m", "2026-11-22T14:03:07+01:00", "host", "sshd", "m", 1},
		{"2019-07-08T17:40:17.954167+02:00 host sshd[9]: m", "2019-07-08T17:40:17.954167+02:00", "host", "sshd", "m", 9},
		{"2013-01-04 17:03:46 login authenticator failed for x", "2013-01-04T17:03:46+01:00", "", "", "login authenticator failed for x", 0},
		{"2012/04/09 11:53:29 [error] 2865#0: *66647 user", "2012-04-09T11:53:29+02:00", "", "", "[error] 2865#0: *66647 user", 0},
		{"[Sat Jun 01 02:17:42 2013] [error] [client 1.2.3.4] x", "2013-06-01T02:17:42+02:00", "", "", "[error] [client 1.2.3.4] x", 0},
		{"[Sat May 09 00:35:52.389262 2020] [:error] x", "2020-05-09T00:35:52.389262+02:00", "", "", "[:error] x", 0},
		{"Thu Sep  8 00:39:49 2016 [pid 15019] [guest] FAIL LOGIN", "2016-09-08T00:39:49+02:00", "", "", "[pid 15019] [guest] FAIL LOGIN", 0},
		{"23-Aug-2013 10:32:56.621 security: info: client 1.2.3.4#5 (x): query denied", "2013-08-23T10:32:56.621+02:00", "", "security", "info: client 1.2.3.4#5 (x): query denied", 0},
		{"04-May-2024 00:00:00 queries: m", "2024-05-04T00:00:00+02:00", "", "queries", "m", 0},
		{"31-Feb-2024 10:32:56 x", "", "", "", "31-Feb-2024 10:32:56 x", 0},
		{"23-Aug-13 10:32:56 x", "", "", "", "23-Aug-13 10:32:56 x", 0},
		{"130324  0:04:00 [Warning] Access denied", "2013-03-24T00:04:00+01:00", "", "", "[Warning] Access denied", 0},
		{"12.34.56.78 - - [20/Jan/2015:19:53:28 +0100] \"GET / HTTP/1.1\" 404", "2015-01-20T19:53:28+01:00", "", "", "12.34.56.78 - - [20/Jan/2015:19:53:28 +0100] \"GET / HTTP/1.1\" 404", 0},
		{"Nov 22 14:0", "", "", "", "Nov 22 14:0", 0},
		{"just some words", "", "", "", "just some words", 0},
		// rsyslog RSYSLOG_SyslogProtocol23Format: a legacy MSG keeps the space after its tag.
		{"<38>1 2026-11-22T14:03:07.123456+01:00 web1 sshd 1234 - -  Failed password", "2026-11-22T14:03:07.123456+01:00", "web1", "sshd", "Failed password", 1234},
		// rsyslog repeated-message reduction (runtime/ratelimit.c).
		{"Nov 22 14:03:07 web1 sshd[1234]: message repeated 3 times: [ Failed password for root]", "2026-11-22T14:03:07+01:00", "web1", "sshd", "Failed password for root", 1234},
		// busybox syslogd: "facility.priority" between host and tag.
		{"Nov 22 14:03:07 web1 auth.info sshd[1234]: Failed password", "2026-11-22T14:03:07+01:00", "web1", "sshd", "Failed password", 1234},
		// journalctl -o short-full, local and --utc.
		{"Sun 2026-11-22 14:03:07 CET web1 sshd[1234]: m", "2026-11-22T14:03:07+01:00", "web1", "sshd", "m", 1234},
		{"Sun 2026-11-22 13:03:07 UTC web1 sshd[1234]: m", "2026-11-22T13:03:07Z", "web1", "sshd", "m", 1234},
		{"Sun 2026-11-22 14:03:07 +0530 web1 sshd[1234]: m", "2026-11-22T14:03:07+05:30", "web1", "sshd", "m", 1234},
		{"Sun 2026-11-22 14:03:07 -03 web1 sshd[1234]: m", "2026-11-22T14:03:07-03:00", "web1", "sshd", "m", 1234},
		{"Sun 2026-11-22 14:03:07 web1 sshd[1234]: m", "2026-11-22T14:03:07+01:00", "web1", "sshd", "m", 1234},
		// journalctl -o short-unix; syslog-ng ts_format(unix).
		{"1795352587.123456 web1 sshd[1234]: m", "2026-11-22T14:03:07.123456+01:00", "web1", "sshd", "m", 1234},
		{"9999999999 is a number, not a stamp", "", "", "", "9999999999 is a number, not a stamp", 0},
		// journalctl -o short-monotonic: no wall clock time.
		{"[ 8123.456789] web1 sshd[1234]: m", "", "web1", "sshd", "m", 1234},
		// syslog-ng ts_format(full).
		{"2026 Nov 22 14:03:07 web1 sshd[1234]: m", "2026-11-22T14:03:07+01:00", "web1", "sshd", "m", 1234},
		{`{"__CURSOR":"s=1","__REALTIME_TIMESTAMP":"1700000000000000","_HOSTNAME":"h","SYSLOG_IDENTIFIER":"sshd","_PID":"77","MESSAGE":"Failed password"}`, "2023-11-14T23:13:20+01:00", "h", "sshd", "Failed password", 77},
		{`{"__REALTIME_TIMESTAMP":"1700000000000000","SYSLOG_IDENTIFIER":"sshd","MESSAGE":[104,105,255]}`, "2023-11-14T23:13:20+01:00", "", "sshd", "hi\xff", 0},
	}
	p := testParser()
	for _, tt := range tests {
		l, err := p.Parse(tt.raw)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.raw, err)
			continue
		}
		got := ""
		if !l.Time.IsZero() {
			got = l.Time.Format(time.RFC3339Nano)
		}
		if got != tt.time || l.Host != tt.host || l.Program != tt.program || l.Message != tt.msg || l.PID != tt.pid {
			t.Errorf("Parse(%q)\n got  time=%q host=%q prog=%q pid=%d msg=%q\n want time=%q host=%q prog=%q pid=%d msg=%q",
				tt.raw, got, l.Host, l.Program, l.PID, l.Message, tt.time, tt.host, tt.program, tt.pid, tt.msg)
		}
	}
}

func TestParseRejects(t *testing.T) {
	p := testParser()
	tests := []struct {
		raw  string
		want error
	}{
		{"", ErrEmpty},
		{"a\x00b", ErrBinary},
		{strings.Repeat("x", MaxLen+1), ErrTooLong},
		{"2030-01-01T00:00:00Z host sshd[1]: m", ErrFuture},
	}
	for _, tt := range tests {
		if _, err := p.Parse(tt.raw); !errors.Is(err, tt.want) {
			t.Errorf("Parse(%.30q) = %v, want %v", tt.raw, err, tt.want)
		}
	}
}

func TestYearless(t *testing.T) {
	p := testParser()
	p.Year = 2010
	l, _ := p.Parse("Nov 22 14:03:07 host sshd[1]: m")
	if l.Time.Year() != 2010 {
		t.Errorf("year = %d, want 2010 from Parser.Year", l.Time.Year())
	}
	p.Year = 0
	p.Now = func() time.Time { return time.Date(2005, 8, 14, 12, 0, 0, 0, p.Location) }
	l, _ = p.Parse("Aug 15 11:00:00 host sshd[1]: m") // within a day ahead: this year
	if l.Time.Year() != 2005 {
		t.Errorf("year = %d, want 2005", l.Time.Year())
	}
	l, _ = p.Parse("Feb 29 11:00:00 host sshd[1]: m") // valid in leap years only
	if l.Time.IsZero() {
		t.Errorf("Feb 29 not accepted as a stamp")
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"Nov 22 14:03:07 host sshd[123]: Failed password for root",
		"<38>1 2019-07-08T17:40:17.954167-04:00 h sshd 5 - [a b=\"c\"] m",
		"[Sat May 09 00:35:52.389262 2020] [:error] x",
		`{"MESSAGE":[1,2,3],"__REALTIME_TIMESTAMP":"1"}`,
		"130324  0:04:00 [Warning] Access denied",
		"1.2.3.4 - - [20/Jan/2015:19:53:28 +0100] \"GET / HTTP/1.1\" 404",
	} {
		f.Add(s)
	}
	p := testParser()
	f.Fuzz(func(t *testing.T, raw string) {
		l, err := p.Parse(raw)
		if err != nil {
			return
		}
		if len(l.Message) > len(raw) && !strings.HasPrefix(raw, "{") {
			t.Fatalf("message longer than record")
		}
	})
}

// TestYearlessCache checks that dating year-less stamps through the
// per-hour cache and the last-second cache gives what a fresh Parser
// gives, across daylight saving switches, the one-day-ahead limit and the
// turn of the year, with the clock standing still and moving. Every stamp
// is read twice in a row, the clock moving in between now and then, so
// the second read is the last-second cache's.
func TestYearlessCache(t *testing.T) {
	zurich, err := time.LoadLocation("Europe/Zurich")
	if err != nil {
		t.Fatal(err)
	}
	nows := []time.Time{
		time.Date(2026, 3, 29, 1, 30, 0, 0, zurich),  // the night clocks go forward
		time.Date(2026, 10, 24, 2, 30, 0, 0, zurich), // a day before they go back
		time.Date(2026, 12, 31, 23, 59, 59, 0, zurich),
		time.Date(2027, 1, 1, 0, 0, 1, 0, zurich),
		time.Date(2026, 6, 15, 12, 34, 56, 0, zurich),
	}
	stamps := []string{}
	for _, d := range []string{"Mar 28", "Mar 29", "Mar 30", "Oct 24", "Oct 25", "Oct 26", "Dec 31", "Jan  1", "Jan  2", "Jun 16", "Feb 29"} {
		for h := 0; h < 24; h++ {
			for _, ms := range []string{"00:00", "29:59", "30:00", "59:59"} {
				stamps = append(stamps, fmt.Sprintf("%s %02d:%s", d, h, ms))
			}
		}
	}
	for _, loc := range []*time.Location{zurich, time.UTC} {
		for _, now := range nows {
			clock := now
			cached := &Parser{Location: loc, Now: func() time.Time { return clock }}
			for i, st := range stamps {
				for read := range 2 {
					if (i+read)%7 == 0 { // a clock that moves on now and then
						clock = clock.Add(37 * time.Minute)
					}
					raw := st + " host prog: m"
					fresh := &Parser{Location: loc, Now: func() time.Time { return clock }}
					want, werr := fresh.Parse(raw)
					got, gerr := cached.Parse(raw)
					if !got.Time.Equal(want.Time) || got.Time.Location() != want.Time.Location() || (gerr == nil) != (werr == nil) {
						t.Fatalf("%s, clock %s, read %d: cached %s %v, fresh %s %v", raw, clock.In(loc), read+1, got.Time, gerr, want.Time, werr)
					}
				}
			}
		}
	}
}

// TestSameSecondFollowsClock reads one stamp again after the clock moved
// past the one-day-ahead limit, and after the turn of the year: the
// last-second cache must date it anew.
func TestSameSecondFollowsClock(t *testing.T) {
	tests := []struct {
		raw        string
		now, later time.Time
		year       int // with later
	}{
		// More than a day ahead at first (last year), then within a day.
		{"Dec 31 23:30:00 host prog: m", time.Date(2026, 12, 30, 22, 0, 0, 0, time.UTC), time.Date(2026, 12, 30, 23, 45, 0, 0, time.UTC), 2026},
		// This year (in the past) at first; then, the clock in the next
		// year, less than a day ahead of it: the next year.
		{"Jan  2 10:00:00 host prog: m", time.Date(2026, 12, 31, 12, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 11, 0, 0, 0, time.UTC), 2027},
	}
	for _, tt := range tests {
		clock := tt.now
		p := &Parser{Location: time.UTC, Now: func() time.Time { return clock }}
		first, err := p.Parse(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		clock = tt.later
		again, err := p.Parse(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		if again.Time.Year() != tt.year || first.Time.Equal(again.Time) {
			t.Errorf("%q: %s at %s, then %s at %s; want the year %d then", tt.raw, first.Time, tt.now, again.Time, tt.later, tt.year)
		}
	}
}

// TestSplitHostTag checks the one-pass reading of "host prog[pid]: msg"
// against splitTagAny on the shapes it takes and the ones it leaves.
func TestSplitHostTag(t *testing.T) {
	for _, s := range []string{
		"host sshd[123]: Failed password",
		"mail postfix/submission/smtpd[1826298]: disconnect from x",
		"host dovecot: imap-login: Login",
		"host proftpd[12345] myhost.domain.com (a[1.2.3.4]): USER x",
		"host sshd[123]:",
		"host sshd[123]",
		"host sshd:",
		"2001:db8::1 sshd[1]: x",
		"host sshd[123456789]: nine digits",
		"host sshd[1234567890]: ten digits",
		"host sshd[]: no pid",
		"host sshd[12: unclosed",
		"host sshd[1]x: after the pid",
		"host sshd[1]:x",
		"host sshd:x",
		"host sshd x",
		"host vsftpd(pam_unix)[15522]: facility",
		"host 1sshd[1]: digit first",
		"host: sshd[1]: host ending in a colon",
		"sshd[1]: no host",
		"host  sshd[1]: two spaces",
		" host sshd[1]: leading space",
		"host sshd[1]:  two spaces after",
		"h\xffst sshd[1]: x",
		strings.Repeat("h", 255) + " sshd[1]: 255",
		strings.Repeat("h", 256) + " sshd[1]: 256",
		"host",
		"",
	} {
		checkSplitHostTag(t, s)
	}
}

func checkSplitHostTag(t *testing.T, s string) {
	host, prog, pid, msg, ok := splitHostTag(s)
	wh, wp, wpid, wm, wok := splitTagAny(s)
	if ok && (!wok || host != wh || prog != wp || pid != wpid || msg != wm) {
		t.Errorf("splitHostTag(%q) = %q %q %d %q, splitTagAny %q %q %d %q %v", s, host, prog, pid, msg, wh, wp, wpid, wm, wok)
	}
	gh, gp, gpid, gm, gok := splitTag(s)
	if gok != wok || gh != wh || gp != wp || gpid != wpid || gm != wm {
		t.Errorf("splitTag(%q) = %q %q %d %q %v, splitTagAny %q %q %d %q %v", s, gh, gp, gpid, gm, gok, wh, wp, wpid, wm, wok)
	}
}

func FuzzSplitTag(f *testing.F) {
	for _, s := range []string{"host sshd[123]: m", "host dovecot: m", "host proftpd[1] m", "h a(b)[1]: m", "a[1]: m"} {
		f.Add(s)
	}
	f.Fuzz(checkSplitHostTag)
}

// TestParseIntoResets parses every record of a varied set into a Line
// that holds the previous one: ParseInto must give what Parse gives,
// leaving nothing of the line before (a stamp, a host, a pid, an origin).
func TestParseIntoResets(t *testing.T) {
	recs := []string{
		"Dec  2 21:03:55 mail sshd[1763765]: Connection reset by 192.0.2.1 port 22655",
		"<34>1 2026-12-02T21:03:55.123Z host app 77 ID47 - an RFC 5424 message",
		`{"MESSAGE":"Failed password for root from 192.0.2.7 port 22 ssh2","_HOSTNAME":"h","SYSLOG_IDENTIFIER":"sshd","_PID":"12","__REALTIME_TIMESTAMP":"1764709435000000"}`,
		`192.0.2.9 - - [02/Dec/2026:21:03:55 +0000] "GET / HTTP/1.1" 404 0`,
		"a message with no envelope at all",
		"",
		"\x00binary",
		"Dec  2 21:03:56 mail dovecot: imap-login: Disconnected: user=<>, rip=192.0.2.3",
		"Dec 31 23:59:59 host kernel: a year-end line",
	}
	p := &Parser{Year: 2026}
	var l Line
	for _, prev := range recs {
		for _, rec := range recs {
			p.ParseInto(&l, prev)
			l.Origin = "before"
			err := p.ParseInto(&l, rec)
			want, wantErr := p.Parse(rec)
			if l != want || !errors.Is(err, wantErr) && err != wantErr {
				t.Fatalf("after %q, ParseInto(%q) = %+v, %v; Parse gives %+v, %v", prev, rec, l, err, want, wantErr)
			}
		}
	}
}

// TestRepeated: rsyslog's repeated-message reduction is read as the
// message it repeats, and how many times; anything else like it is text.
func TestRepeated(t *testing.T) {
	p := testParser()
	for _, tt := range []struct {
		raw, msg string
		n        int
	}{
		{"Nov 22 14:03:07 h sshd[1]: message repeated 3 times: [ Failed password for root]", "Failed password for root", 3},
		{"Nov 22 14:03:07 h sshd[1]: message repeated 12 times: [ x]", "x", 12},
		{"Nov 22 14:03:07 h sshd[1]: message repeated 0 times: [ x]", "message repeated 0 times: [ x]", 0},
		{"Nov 22 14:03:07 h sshd[1]: message repeated 3 times: [ x", "message repeated 3 times: [ x", 0},
		{"Nov 22 14:03:07 h sshd[1]: message repeated 1234567890 times: [ x]", "message repeated 1234567890 times: [ x]", 0},
		{"Nov 22 14:03:07 h sshd[1]: messages repeated", "messages repeated", 0},
	} {
		l, err := p.Parse(tt.raw)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.raw, err)
		}
		if l.Message != tt.msg || l.Repeats != tt.n {
			t.Errorf("Parse(%q): message %q, repeats %d; want %q, %d", tt.raw, l.Message, l.Repeats, tt.msg, tt.n)
		}
	}
}
