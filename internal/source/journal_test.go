package source

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rampart-dev/rampart/internal/journaltest"
	"github.com/rampart-dev/rampart/internal/logline"
	"github.com/rampart-dev/rampart/internal/logtest"
)

// These tests run the real journalctl over a real journal file
// (journaltest).

// journalSource returns a source reading f after the cursor after.
func journalSource(f *journaltest.File, after string) *Journal {
	return &Journal{
		Args:        []string{"--file=" + f.Path},
		AfterCursor: after,
		MinBackoff:  10 * time.Millisecond,
		MaxBackoff:  100 * time.Millisecond,
	}
}

func TestJournalMessages(t *testing.T) {
	jf := journaltest.New(t)
	jf.Append(journaltest.Entry{Msg: "old", Time: time.Now().Add(-time.Hour)})
	src := journalSource(jf, jf.LastCursor())
	src.Units = []string{"ssh.service"}
	src.Identifiers = []string{"sshd", "sshd-session"}
	col := newCollector()
	start(t, src, col.emit)

	stamp := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	jf.Append(
		journaltest.Entry{Msg: "Failed password for root from 10.0.0.1 port 22 ssh2", PID: 4242, Host: "web1", Time: stamp},
		journaltest.Entry{Msg: "other unit", Unit: "cron.service"},
		journaltest.Entry{Msg: "other program", Ident: "cron"},
		journaltest.Entry{Msg: "Invalid user \xff\xfeadmin from 10.0.0.2", Ident: "sshd-session", PID: 7},
		journaltest.Entry{Msg: "two\nlines", PID: 8},
	)
	ls := col.waitCount(t, 3)
	want := []struct {
		msg, prog, host string
		pid             int
	}{
		{"Failed password for root from 10.0.0.1 port 22 ssh2", "sshd", "web1", 4242},
		{"Invalid user \xff\xfeadmin from 10.0.0.2", "sshd-session", "", 7},
		{"two\nlines", "sshd", "", 8},
	}
	if len(ls) != len(want) {
		t.Fatalf("got %d lines %q, want %d", len(ls), messagesOf(ls), len(want))
	}
	for i, w := range want {
		l := ls[i]
		if l.Message != w.msg || l.Program != w.prog || l.Host != w.host || l.PID != w.pid || l.Origin != "journald" {
			t.Errorf("line %d: got msg=%q prog=%q host=%q pid=%d origin=%q, want %+v", i, l.Message, l.Program, l.Host, l.PID, l.Origin, w)
		}
	}
	if !ls[0].Time.Equal(stamp) {
		t.Errorf("time %v, want %v", ls[0].Time, stamp)
	}
	waitFor(t, "cursor of the last record", func() bool { return src.Cursor() == jf.LastCursor() })
	if s := src.Stats(); s.Lines != 3 || s.Restarts != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestJournalMatches: journalctl's match expressions select as fail2ban's
// journalmatch does, "+" being "or": OpenSSH's journalmatch names the unit
// sshd.service, which is ssh.service on Debian, and its commands, so
// Debian's sshd and sshd-session are read by their command names.
func TestJournalMatches(t *testing.T) {
	jf := journaltest.New(t)
	jf.Append(journaltest.Entry{Msg: "old", Time: time.Now().Add(-time.Hour)})
	src := journalSource(jf, jf.LastCursor())
	src.Matches = []string{"_SYSTEMD_UNIT=sshd.service", "+", "_COMM=sshd", "+", "_COMM=sshd-session"}
	col := newCollector()
	start(t, src, col.emit)
	jf.Append(
		journaltest.Entry{Msg: "Debian's sshd"},
		journaltest.Entry{Msg: "cron", Ident: "CRON", Unit: "cron.service"},
		journaltest.Entry{Msg: "another distribution's unit", Ident: "sshd-wrapper", Unit: "sshd.service"},
		journaltest.Entry{Msg: "Debian 13's session", Ident: "sshd-session"},
		journaltest.Entry{Msg: "sshd's name, another unit's command", Ident: "sshd", Comm: "socat", Unit: "socat.service"},
		journaltest.Entry{Msg: "last"},
	)
	ls := col.waitCount(t, 4)
	want := []string{"Debian's sshd", "another distribution's unit", "Debian 13's session", "last"}
	if got := messagesOf(ls); !slices.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
}

func TestJournalResume(t *testing.T) {
	jf := journaltest.New(t)
	jf.Append(journaltest.Entry{Msg: "old"})
	j1 := journalSource(jf, jf.LastCursor())
	col1 := newCollector()
	stop := start(t, j1, col1.emit)
	jf.Append(journaltest.Entry{Msg: "a1"}, journaltest.Entry{Msg: "a2"})
	col1.waitCount(t, 2)
	stop()
	saved := j1.Cursor()

	// While nothing runs, more entries than journalctl --follow shows by
	// default (10): every one is read on resuming, before any new one
	// comes (journalctl goes on past the tenth only at the next write).
	var missed []journaltest.Entry
	var want []string
	for i := 3; i < 30; i++ {
		missed = append(missed, journaltest.Entry{Msg: fmt.Sprintf("a%d", i)})
		want = append(want, fmt.Sprintf("a%d", i))
	}
	jf.Append(missed...)
	j2 := journalSource(jf, saved)
	col2 := newCollector()
	start(t, j2, col2.emit)
	col2.waitCount(t, len(want))
	jf.Append(journaltest.Entry{Msg: "a30"})
	want = append(want, "a30")
	col2.waitCount(t, len(want))
	if got, want := col1.messages(), []string{"a1", "a2"}; !slices.Equal(got, want) {
		t.Errorf("first run: got %q, want %q", got, want)
	}
	if got := col2.messages(); !slices.Equal(got, want) {
		t.Errorf("resumed: got %q, want %q", got, want)
	}
}

func TestJournalStartsAtEnd(t *testing.T) {
	jf := journaltest.New(t)
	jf.Append(journaltest.Entry{Msg: "old1"}, journaltest.Entry{Msg: "old2"})
	src := journalSource(jf, "")
	col := newCollector()
	start(t, src, col.emit)
	// journalctl starts at the end once it is running: write until it shows.
	deadline := time.Now().Add(waitTimeout)
	for i := 0; ; i++ {
		jf.Append(journaltest.Entry{Msg: "probe " + strconv.Itoa(i)})
		_, changed := col.snapshot()
		if len(col.messages()) > 0 {
			break
		}
		select {
		case <-changed:
		case <-time.After(100 * time.Millisecond):
		}
		if len(col.messages()) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("journalctl never showed a record")
		}
	}
	for _, m := range col.messages() {
		if strings.HasPrefix(m, "old") {
			t.Errorf("emitted %q from before the start", m)
		}
	}
}

// TestJournalRestart kills journalctl under the source, which must start
// it again from the last cursor: nothing lost, nothing repeated.
func TestJournalRestart(t *testing.T) {
	jf := journaltest.New(t)
	jf.Append(journaltest.Entry{Msg: "old"})
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	wrapper := filepath.Join(dir, "journalctl")
	script := fmt.Sprintf("#!/bin/sh\necho \"$$ $*\" >> %s\nexec journalctl \"$@\"\n", runs)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	src := journalSource(jf, jf.LastCursor())
	src.Command = wrapper
	col := newCollector()
	start(t, src, col.emit)

	jf.Append(journaltest.Entry{Msg: "r1"})
	col.waitCount(t, 1)
	cursor := jf.LastCursor()
	invocations := func() []string {
		b, _ := os.ReadFile(runs)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	pid, err := strconv.Atoi(strings.Fields(invocations()[0])[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "journalctl restarted", func() bool { return len(invocations()) >= 2 })
	jf.Append(journaltest.Entry{Msg: "r2"}, journaltest.Entry{Msg: "r3"})
	col.waitCount(t, 3)
	if got, want := col.messages(), []string{"r1", "r2", "r3"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if second := invocations()[1]; !strings.Contains(second, "--after-cursor="+cursor) {
		t.Errorf("restarted as %q, want --after-cursor=%s", second, cursor)
	}
	if s := src.Stats(); s.Restarts != 1 {
		t.Errorf("restarts = %d, want 1", s.Restarts)
	}
}

// TestJournalBadCursor: a saved cursor journalctl rejects is dropped, and
// reading goes on from when Run started rather than not at all.
func TestJournalBadCursor(t *testing.T) {
	jf := journaltest.New(t)
	jf.Append(journaltest.Entry{Msg: "old", Time: time.Now().Add(-time.Hour)})
	src := journalSource(jf, "s=garbage")
	var logs logtest.Buffer
	src.Logger = testLogger(&logs)
	col := newCollector()
	start(t, src, col.emit)
	jf.Append(journaltest.Entry{Msg: "new"})
	col.waitCount(t, 1)
	if got, want := col.messages(), []string{"new"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if !strings.Contains(logs.String(), "rejects the saved cursor") {
		t.Errorf("log does not say the cursor was dropped:\n%s", logs.String())
	}
}

func TestJournalNoCommand(t *testing.T) {
	src := &Journal{Command: filepath.Join(t.TempDir(), "journalctl")}
	err := src.Run(t.Context(), func(logline.Line) {})
	if err == nil {
		t.Fatal("Run without journalctl: no error")
	}
}

// testJournalRun returns a journalRun reading no journalctl, its clock
// counting its readings.
func testJournalRun(readings *int, reading time.Time) (*journalRun, *collector) {
	r := &journalRun{Journal: &Journal{}, log: logger(nil)}
	r.clock, r.parser = newReadClock(&logline.Parser{Location: time.UTC, Now: func() time.Time { *readings++; return reading }})
	col := newCollector()
	r.emit = col.emit
	return r, col
}

// TestJournalRecords reads journalctl's export format without a journal:
// text and binary MESSAGE (not UTF-8, several lines), fields not asked
// for, an entry with nothing to read, cursors; the entries of one read
// share one clock reading.
func TestJournalRecords(t *testing.T) {
	var b bytes.Buffer
	cursor := func(i int) string { return fmt.Sprintf("s=9c1a;i=%d;b=0123;m=3e8;t=60a2;x=7567", i) }
	journaltest.WriteEntry(&b, "__CURSOR", cursor(1), "__REALTIME_TIMESTAMP", "1700000000000000", "__MONOTONIC_TIMESTAMP", "1000",
		"_BOOT_ID", "0123456789abcdef0123456789abcdef", "_HOSTNAME", "web1", "SYSLOG_IDENTIFIER", "sshd", "_PID", "4242",
		"_SYSTEMD_UNIT", "ssh.service", "MESSAGE", "Failed password for invalid user admin from 192.0.2.7 port 52814 ssh2")
	journaltest.WriteEntry(&b, "__CURSOR", cursor(2), "__REALTIME_TIMESTAMP", "1700000001000000", "SYSLOG_IDENTIFIER", "sshd",
		"MESSAGE", "Invalid user \xc3(x from 192.0.2.8")
	journaltest.WriteEntry(&b, "__CURSOR", cursor(3), "__REALTIME_TIMESTAMP", "1700000002000000", "_COMM", "sshd",
		"FOO", "a field \x00 not asked for", "MESSAGE", "pam_unix(sshd:auth): authentication failure\nsecond line")
	journaltest.WriteEntry(&b, "__CURSOR", cursor(4), "_BOOT_ID", "0123") // nothing to read: invalid
	journaltest.WriteEntry(&b, "__CURSOR", cursor(5), "__REALTIME_TIMESTAMP", "1700000003000000", "SYSLOG_IDENTIFIER", "sshd",
		"SYSLOG_PID", "77", "_PID", "4245", "MESSAGE", "Connection closed by 192.0.2.9 port 22 [preauth]")
	readings := 0
	reading := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	r, col := testJournalRun(&readings, reading)
	n, err := r.read(clockedReader{bytes.NewReader(b.Bytes()), r.clock})
	if n != 5 || err != nil {
		t.Fatalf("read %d entries, %v; want 5, nil", n, err)
	}
	want := []string{
		"Failed password for invalid user admin from 192.0.2.7 port 52814 ssh2",
		"Invalid user \xc3(x from 192.0.2.8",
		"pam_unix(sshd:auth): authentication failure\nsecond line",
		"Connection closed by 192.0.2.9 port 22 [preauth]",
	}
	if got := col.messages(); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	ls, _ := col.snapshot()
	if l := ls[0]; l.Host != "web1" || l.Program != "sshd" || l.PID != 4242 || !l.Time.Equal(time.UnixMicro(1700000000000000)) {
		t.Errorf("first entry read as %+v", l)
	}
	if l := ls[2]; l.Program != "sshd" {
		t.Errorf("_COMM stands for a missing SYSLOG_IDENTIFIER: %+v", l)
	}
	if l := ls[3]; l.PID != 77 {
		t.Errorf("SYSLOG_PID comes before _PID: %+v", l)
	}
	if s := r.Stats(); s.Invalid != 1 || s.Lines != 4 {
		t.Errorf("stats %+v, want 4 lines, 1 invalid", s)
	}
	if c := r.Journal.Cursor(); c != cursor(5) {
		t.Errorf("cursor %q, want the last entry's", c)
	}
	// The entries came in one read: one reading of the clock, theirs.
	if readings != 1 {
		t.Errorf("%d clock readings for one read, want 1", readings)
	}
	for _, l := range ls {
		if !l.Read.Equal(reading) {
			t.Errorf("%q: Read %v, want the read's %v", l.Message, l.Read, reading)
		}
	}
}

// TestJournalRecordLimits: a value longer than a line may be, in either
// form, is skipped unread and its entry counted too long, its cursor kept,
// as is an entry repeating a field past exportMaxFields (fields not asked
// for do not count, however many or long); a stream that ends inside an
// entry leaves that entry out and says so.
func TestJournalRecordLimits(t *testing.T) {
	var b bytes.Buffer
	long := strings.Repeat("x", logline.MaxLen+1)
	many := []string{"__CURSOR", "c0", "SYSLOG_IDENTIFIER", "sshd", "BIG_TEXT", long, "BIG_BINARY", long + "\n"}
	for i := range 2 * exportMaxFields {
		many = append(many, fmt.Sprintf("FIELD_%d", i), "v")
	}
	journaltest.WriteEntry(&b, append(many, "MESSAGE", "many fields")...)
	repeated := []string{"__CURSOR", "c1"}
	for range exportMaxFields {
		repeated = append(repeated, "MESSAGE", "again")
	}
	journaltest.WriteEntry(&b, repeated...)
	journaltest.WriteEntry(&b, "__CURSOR", "c1", "SYSLOG_IDENTIFIER", "sshd", "MESSAGE", "before")
	journaltest.WriteEntry(&b, "__CURSOR", "c2", "SYSLOG_IDENTIFIER", "sshd", "MESSAGE", long)
	journaltest.WriteEntry(&b, "__CURSOR", "c3", "SYSLOG_IDENTIFIER", "sshd", "MESSAGE", long+"\n")
	journaltest.WriteEntry(&b, "__CURSOR", "c4", "SYSLOG_IDENTIFIER", "sshd", "MESSAGE", strings.Repeat("y", logline.MaxLen))
	journaltest.WriteEntry(&b, "__CURSOR", "c5", "SYSLOG_IDENTIFIER", "sshd", "MESSAGE", "after")
	b.WriteString("__CURSOR=c6\nMESSAGE=cut off") // journalctl killed mid-entry
	readings := 0
	r, col := testJournalRun(&readings, time.Now())
	n, err := r.read(clockedReader{bytes.NewReader(b.Bytes()), r.clock})
	if n != 7 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %d entries, %v; want 7, %v", n, err, io.ErrUnexpectedEOF)
	}
	got := col.messages()
	if len(got) != 4 || got[0] != "many fields" || got[1] != "before" || len(got[2]) != logline.MaxLen || got[3] != "after" {
		t.Errorf("messages %.40q, want many fields, before, %d bytes, after", got, logline.MaxLen)
	}
	if s := r.Stats(); s.TooLong != 3 || s.Lines != 4 {
		t.Errorf("stats %+v, want 4 lines, 3 too long", s)
	}
	if c := r.Journal.Cursor(); c != "c5" {
		t.Errorf("cursor %q, want c5", c)
	}
}

// TestJournalRecordNotExport: a line that is neither a field nor a field
// name ends the reading with an error (journalctl is then restarted from
// the cursor) rather than being taken for a binary field's name.
func TestJournalRecordNotExport(t *testing.T) {
	var b bytes.Buffer
	journaltest.WriteEntry(&b, "__CURSOR", "c1", "SYSLOG_IDENTIFIER", "sshd", "MESSAGE", "first")
	b.WriteString("-- No entries --\n")
	journaltest.WriteEntry(&b, "__CURSOR", "c2", "SYSLOG_IDENTIFIER", "sshd", "MESSAGE", "second")
	readings := 0
	r, col := testJournalRun(&readings, time.Now())
	n, err := r.read(bytes.NewReader(b.Bytes()))
	if n != 1 || !errors.Is(err, errExportFormat) {
		t.Fatalf("read %d entries, %v; want 1, %v", n, err, errExportFormat)
	}
	if got := col.messages(); !slices.Equal(got, []string{"first"}) {
		t.Errorf("messages %q, want the first only", got)
	}
	if c := r.Journal.Cursor(); c != "c1" {
		t.Errorf("cursor %q, want c1", c)
	}
}

// FuzzExportReader: any stream ends in an error or io.EOF, without a
// panic, and an entry read from a well-formed stream is what was written.
func FuzzExportReader(f *testing.F) {
	f.Add([]byte("__CURSOR=c1\nMESSAGE=hello\n\n"), "sshd", "a message")
	f.Add([]byte("MESSAGE\n\x05\x00\x00\x00\x00\x00\x00\x00ab\ncd\n\n"), "x", "\xff\n")
	f.Add([]byte("MESSAGE\n\xff\xff\xff\xff\xff\xff\xff\xff"), "", "")
	f.Fuzz(func(t *testing.T, stream []byte, ident, msg string) {
		x := newExportReader(bytes.NewReader(stream))
		for range len(stream) + 1 {
			if _, _, err := x.next(); err != nil {
				break
			}
		}
		if strings.ContainsRune(ident, '\n') || !utf8.ValidString(ident) || len(msg) > logline.MaxLen {
			return
		}
		var b bytes.Buffer
		journaltest.WriteEntry(&b, "__CURSOR", "c", "SYSLOG_IDENTIFIER", ident, "MESSAGE", msg)
		e, tooLong, err := newExportReader(&b).next()
		if err != nil || tooLong || e.Cursor != "c" || e.Identifier != ident || string(e.Message) != msg {
			t.Fatalf("wrote %q, %q; read %+v, %v, %v", ident, msg, e, tooLong, err)
		}
	})
}

// TestJournalFieldsAsked: journalctl is asked for every field a
// logline.JournalEntry holds (its JSON names) but those it always sends,
// and for no other; the entry sets each of them from the export format.
func TestJournalFieldsAsked(t *testing.T) {
	var held []string
	typ := reflect.TypeFor[logline.JournalEntry]()
	for i := range typ.NumField() {
		name := typ.Field(i).Tag.Get("json")
		if !logline.IsJournalField(name) {
			t.Errorf("JournalEntry.%s (%q) is not set from the export format", typ.Field(i).Name, name)
		}
		if name != "__CURSOR" && name != "__REALTIME_TIMESTAMP" {
			held = append(held, name)
		}
	}
	asked := strings.Split(journalFields, ",")
	slices.Sort(held)
	slices.Sort(asked)
	if !slices.Equal(asked, held) {
		t.Errorf("journalctl is asked for %q; the entry holds %q", asked, held)
	}
}
