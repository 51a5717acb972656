package source

import (
	"fmt"
	"net"
	"testing"
	"time"
)

func dialFrom(t *testing.T, from string, addr net.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// 64 idle connections from one address used to fill every place (the
// limit was 64 in all) and lock every sender out for the 5 minute idle
// timeout. One address now holds PerAddr places; another sender is served.
func TestSyslogIdlePeersDoNotLockOut(t *testing.T) {
	s := testSyslog(t, false, true)
	col := newCollector()
	start(t, s, col.emit)
	addr := s.TCP.Addr()
	for range 64 {
		dialFrom(t, "127.0.0.1", addr)
	}
	waitFor(t, "the idle peers over PerAddr refused", func() bool { return s.Stats().Rejected == 64-16 })
	c := dialFrom(t, "127.0.0.2", addr)
	fmt.Fprintf(c, "<13>host app: from another sender\n")
	col.waitCount(t, 1)
}

// A peer that sends nothing is closed after SilentTimeout, not after the
// idle timeout meant for senders between frames, and gives its place back.
func TestSyslogSilentPeersClosed(t *testing.T) {
	s := testSyslog(t, false, true)
	s.PerAddr = 4
	s.SilentTimeout = 200 * time.Millisecond
	col := newCollector()
	start(t, s, col.emit)
	addr := s.TCP.Addr()
	var silent []net.Conn
	for range 4 {
		silent = append(silent, dialFrom(t, "127.0.0.1", addr))
	}
	// A sender that has spoken keeps its connection past SilentTimeout.
	talker := dialFrom(t, "127.0.0.3", addr)
	fmt.Fprintf(talker, "<13>host app: first\n")
	col.waitCount(t, 1)
	for _, c := range silent {
		serverClosed(t, c, "a silent peer")
	}
	if st := s.Stats(); st.Silent != 4 {
		t.Fatalf("silent = %d, want 4", st.Silent)
	}
	fmt.Fprintf(talker, "<13>host app: second\n")
	col.waitCount(t, 2)
	// The places are free again.
	c := dialFrom(t, "127.0.0.1", addr)
	fmt.Fprintf(c, "<13>host app: back\n")
	col.waitCount(t, 3)
}
