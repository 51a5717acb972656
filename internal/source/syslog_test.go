package source

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/logline"
)

func testSyslog(t *testing.T, udp, tcp bool) *Syslog {
	t.Helper()
	var ua, ta string
	if udp {
		ua = "127.0.0.1:0"
	}
	if tcp {
		ta = "127.0.0.1:0"
	}
	s, err := ListenSyslog(ua, ta)
	if err != nil {
		t.Fatal(err)
	}
	s.Parser = &logline.Parser{Location: time.UTC, Now: func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }}
	return s
}

func dial(t testing.TB, network string, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type wantLine struct {
	time, host, prog, msg string
	pid                   int
}

func checkLines(t *testing.T, got []logline.Line, want []wantLine) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d lines %q, want %d", len(got), messagesOf(got), len(want))
	}
	for i, w := range want {
		l := got[i]
		tm := ""
		if !l.Time.IsZero() {
			tm = l.Time.Format(time.RFC3339Nano)
		}
		if tm != w.time || l.Host != w.host || l.Program != w.prog || l.PID != w.pid || l.Message != w.msg || l.Origin != "syslog" {
			t.Errorf("line %d: got time=%q host=%q prog=%q pid=%d msg=%q origin=%q, want %+v", i, tm, l.Host, l.Program, l.PID, l.Message, l.Origin, w)
		}
	}
}

func TestSyslogUDP(t *testing.T) {
	s := testSyslog(t, true, false)
	s.MaxMessage = 200
	col := newCollector()
	start(t, s, col.emit)
	c := dial(t, "udp", s.UDP.LocalAddr())
	for _, d := range []string{
		"<38>Nov 22 14:03:07 web1 sshd[123]: Failed password for root from 192.0.2.1 port 22 ssh2",
		"<38>1 2026-11-22T14:03:07.5Z web2 sshd 77 - [origin ip=\"192.0.2.9\"] Invalid user bob from 192.0.2.2\n",
		"<13>Nov 22 14:03:08 web1 postfix/smtpd[9]: warning: unknown[192.0.2.3]: SASL LOGIN authentication failed\x00",
		"<13>" + strings.Repeat("x", 300), // over MaxMessage
		"<13>bin\x00ary",
		"",
		"<13>Nov 22 14:03:09 web1 sshd[1]: last",
	} {
		if _, err := c.Write([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	got := col.waitLines(t, "last", func(ls []logline.Line) bool { return len(ls) > 0 && ls[len(ls)-1].Message == "last" })
	checkLines(t, got, []wantLine{
		{"2026-11-22T14:03:07Z", "web1", "sshd", "Failed password for root from 192.0.2.1 port 22 ssh2", 123},
		{"2026-11-22T14:03:07.5Z", "web2", "sshd", "Invalid user bob from 192.0.2.2", 77},
		{"2026-11-22T14:03:08Z", "web1", "postfix/smtpd", "warning: unknown[192.0.2.3]: SASL LOGIN authentication failed", 9},
		{"2026-11-22T14:03:09Z", "web1", "sshd", "last", 1},
	})
	want := Stats{Lines: 4, TooLong: 1, Binary: 1, Empty: 1}
	waitFor(t, fmt.Sprintf("stats %+v", want), func() bool { return s.Stats() == want })
}

// TestSyslogTCPFraming sends each stream on one connection and closes it.
func TestSyslogTCPFraming(t *testing.T) {
	const max = 100
	long := "<13>" + strings.Repeat("y", max)
	tests := []struct {
		name   string
		stream string
		want   []string
		stats  Stats
	}{
		{"newline", "<13>host a: one\n<13>host a: two\n", []string{"one", "two"}, Stats{Lines: 2}},
		{"CRLF", "<13>host a: one\r\n<13>host a: two\r\n", []string{"one", "two"}, Stats{Lines: 2}},
		{"octet counted", "15 <13>host a: one15 <13>host a: two", []string{"one", "two"}, Stats{Lines: 2}},
		{"octet counted with newlines", "16 <13>host a: one\n16 <13>host a: two\n", []string{"one", "two"}, Stats{Lines: 2}},
		{"mixed", "15 <13>host a: one<13>host a: two\n17 <13>host a: three", []string{"one", "two", "three"}, Stats{Lines: 3}},
		{"newline inside a counted frame", "21 <13>host a: two\nlines", []string{"two\nlines"}, Stats{Lines: 1}},
		{"last record without newline", "<13>host a: one\n<13>host a: end", []string{"one", "end"}, Stats{Lines: 2}},
		{"digits that are no length", "2026-11-22T14:03:07Z host a: iso\n123abc\n", []string{"iso", "123abc"}, Stats{Lines: 2}},
		{"counted frame too long", fmt.Sprintf("%d %s15 <13>host a: one", len(long), long), []string{"one"}, Stats{Lines: 1, TooLong: 1}},
		{"newline frame too long", long + "\n<13>host a: one\n", []string{"one"}, Stats{Lines: 1, TooLong: 1}},
		{"empty lines", "\n\n<13>host a: one\n", []string{"one"}, Stats{Lines: 1, Empty: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSyslog(t, false, true)
			s.MaxMessage = max
			col := newCollector()
			start(t, s, col.emit)
			c := dial(t, "tcp", s.TCP.Addr())
			if _, err := io.WriteString(c, tt.stream); err != nil {
				t.Fatal(err)
			}
			c.Close()
			waitFor(t, fmt.Sprintf("stats %+v", tt.stats), func() bool { return s.Stats() == tt.stats })
			if got := col.messages(); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// serverClosed waits until the server closes c: a read returns EOF or a
// reset rather than data or a timeout.
func serverClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s: still connected", what)
	}
}

// TestSyslogHostile: misbehaving clients are cut off, and a well-behaved
// client sending all the while loses nothing.
func TestSyslogHostile(t *testing.T) {
	s := testSyslog(t, false, true)
	s.MaxMessage = 256
	s.MaxConns = 8
	s.IdleTimeout = 300 * time.Millisecond
	col := newCollector()
	start(t, s, col.emit)
	addr := s.TCP.Addr()

	// The good client sends until the hostile ones are all gone.
	good := dial(t, "tcp", addr)
	goodDone := make(chan struct{})
	var goodSent int
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond) // within IdleTimeout: an active client
		defer tick.Stop()
		for {
			if _, err := fmt.Fprintf(good, "<13>host good: msg %d\n", goodSent); err != nil {
				t.Errorf("good client: %v", err)
				return
			}
			goodSent++
			select {
			case <-goodDone:
				return
			case <-tick.C:
			}
		}
	})

	hostile := []struct {
		name string
		act  func(c net.Conn)
	}{
		{"garbage", func(c net.Conn) {
			for i := range 5 {
				fmt.Fprintf(c, "\x00\x01\x02 garbage %d \xff\n", i)
			}
		}},
		{"huge length prefix", func(c net.Conn) { io.WriteString(c, "999999999 <13>host a: x") }},
		{"endless line", func(c net.Conn) {
			io.WriteString(c, strings.Repeat("z", 64*256+1024)) // beyond what is skipped
		}},
		{"slowloris", func(c net.Conn) {
			io.WriteString(c, "<13>host a: slow")
			tick := time.NewTicker(50 * time.Millisecond) // each byte within IdleTimeout
			defer tick.Stop()
			for range tick.C {
				if _, err := io.WriteString(c, "."); err != nil {
					return // closed by the server
				}
			}
		}},
	}
	for _, h := range hostile {
		c := dial(t, "tcp", addr)
		wg.Go(func() { h.act(c) })
		serverClosed(t, c, h.name)
	}
	close(goodDone)
	wg.Wait()
	want := goodSent
	got := col.waitLines(t, "the good client's lines", func(ls []logline.Line) bool { return len(ls) >= want })
	for i, l := range got {
		if m := fmt.Sprintf("msg %d", i); l.Message != m {
			t.Fatalf("line %d: %q, want %q", i, l.Message, m)
		}
	}
	if s := s.Stats(); s.Dropped != 4 || s.Lines != uint64(want) {
		t.Errorf("stats %+v, want 4 dropped, %d lines", s, want)
	}
}

func TestSyslogMaxConns(t *testing.T) {
	s := testSyslog(t, false, true)
	s.MaxConns = 2
	col := newCollector()
	start(t, s, col.emit)
	addr := s.TCP.Addr()
	var held []net.Conn
	for i := range 2 {
		c := dial(t, "tcp", addr)
		fmt.Fprintf(c, "<13>host a: held %d\n", i)
		col.waitCount(t, i+1) // served, so counted as open
		held = append(held, c)
	}
	extra := dial(t, "tcp", addr)
	serverClosed(t, extra, "connection over the limit")
	if got := s.Stats().Rejected; got != 1 {
		t.Errorf("rejected = %d, want 1", got)
	}
	// Once one closes, there is room again: retry until the server has
	// seen it go.
	held[0].Close()
	waitFor(t, "a new connection served", func() bool {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			return false
		}
		defer c.Close()
		fmt.Fprintf(c, "<13>host a: later\n")
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		if !isTimeout(err) {
			return false // closed at once: still full
		}
		col.waitLines(t, "later", func(ls []logline.Line) bool { return ls[len(ls)-1].Message == "later" })
		return true
	})
}

func TestSyslogManyClients(t *testing.T) {
	const clients, each = 50, 100
	s := testSyslog(t, false, true)
	col := newCollector()
	start(t, s, col.emit)
	var wg sync.WaitGroup
	for c := range clients {
		// Each from an address of its own: one address holds at most
		// PerAddr connections.
		conn := dialFrom(t, fmt.Sprintf("127.0.1.%d", c+1), s.TCP.Addr())
		wg.Go(func() {
			w := bufio.NewWriter(conn)
			for i := range each {
				msg := fmt.Sprintf("<13>host c%d: %d", c, i)
				if c%2 == 0 {
					fmt.Fprintf(w, "%d %s", len(msg), msg)
				} else {
					fmt.Fprintf(w, "%s\n", msg)
				}
			}
			if err := w.Flush(); err != nil {
				t.Error(err)
			}
			conn.Close()
		})
	}
	wg.Wait()
	ls := col.waitCount(t, clients*each)
	next := make(map[string]int)
	for _, l := range ls {
		if want := fmt.Sprint(next[l.Program]); l.Message != want {
			t.Fatalf("client %s: got %q, want %q", l.Program, l.Message, want)
		}
		next[l.Program]++
	}
	if len(next) != clients {
		t.Errorf("%d clients heard, want %d", len(next), clients)
	}
	if st := s.Stats(); st.Lines != clients*each || st.Dropped != 0 || st.Rejected != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestSyslogShutdown(t *testing.T) {
	s := testSyslog(t, true, true)
	stop := start(t, s, newCollector().emit)
	c := dial(t, "tcp", s.TCP.Addr())
	io.WriteString(c, "<13>host a: partial frame")
	stop() // fails the test unless Run returns nil
	serverClosed(t, c, "client at shutdown")
	if _, err := net.Dial("tcp", s.TCP.Addr().String()); err == nil {
		t.Error("listener still open after Run returned")
	}
}

func TestSyslogErrors(t *testing.T) {
	if _, err := ListenSyslog("127.0.0.1:notaport", ""); err == nil {
		t.Error("ListenSyslog with a bad address: no error")
	}
	if err := (&Syslog{}).Run(t.Context(), func(logline.Line) {}); err == nil {
		t.Error("Run without sockets: no error")
	}
}

// decodeFrames splits data into frames as a TCP connection would, and
// returns the frames and how many were too long, stopping at the first
// error that ends a stream.
func decodeFrames(t *testing.T, data []byte, max int) (frames []string, tooLong int, err error) {
	r := bytes.NewReader(data)
	f := newFramer(r, max)
	for calls := 0; ; calls++ {
		if calls > len(data)+1 {
			t.Fatalf("no progress after %d frames", calls)
		}
		before := r.Len() + f.r.Buffered()
		rec, err := f.next()
		switch {
		case err == nil:
			if len(rec) > max {
				t.Fatalf("frame of %d bytes, max %d", len(rec), max)
			}
			frames = append(frames, string(rec))
		case errors.Is(err, errFrameTooLong):
			tooLong++
		case errors.Is(err, io.EOF):
			return frames, tooLong, nil
		default:
			return frames, tooLong, err
		}
		if r.Len()+f.r.Buffered() >= before {
			t.Fatalf("frame %d consumed nothing", calls)
		}
	}
}

func FuzzSyslogFrame(f *testing.F) {
	for _, s := range []string{
		"<13>host a: one\n<13>host a: two\n",
		"15 <13>host a: one15 <13>host a: two",
		"15 <13>host a: one<13>host a: two\n17 <13>host a: three",
		"999999999 x",
		"123456789012 x\n",
		"0 x\n",
		"5 ab",
		"2026-11-22T14:03:07Z host a: iso\n",
		"\x00\xff\n\n\r\n",
	} {
		f.Add([]byte(s))
	}
	const max = 64
	f.Fuzz(func(t *testing.T, data []byte) {
		frames, _, err := decodeFrames(t, data, max)
		if err != nil && !errors.Is(err, errFraming) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error %v", err)
		}
		// Whatever was read is read back the same, octet counted. A frame
		// of zero bytes cannot be octet counted ("0 " is text): leave those.
		frames = slices.DeleteFunc(frames, func(s string) bool { return s == "" })
		var enc bytes.Buffer
		for _, fr := range frames {
			fmt.Fprintf(&enc, "%d %s", len(fr), fr)
		}
		again, tooLong, err := decodeFrames(t, enc.Bytes(), max)
		if err != nil || tooLong != 0 {
			t.Fatalf("re-encoded: err %v, %d too long", err, tooLong)
		}
		if !slices.Equal(frames, again) {
			t.Fatalf("re-encoded frames differ:\n%q\n%q", frames, again)
		}
	})
}
