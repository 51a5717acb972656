package connlimit

import (
	"io"
	"net"
	"testing"
	"time"
)

// serve accepts on a Limiter-wrapped loopback listener and holds every
// connection it is given until the test closes it through the returned
// channel's values.
func serve(t *testing.T, l *Limiter) (string, <-chan net.Conn) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := l.Listen(inner)
	t.Cleanup(func() { ln.Close() })
	got := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			got <- c
		}
	}()
	return inner.Addr().String(), got
}

func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer reports whether the server closed c at once.
func closedByPeer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return err == io.EOF
}

func TestPerAddressAndTotal(t *testing.T) {
	l := &Limiter{Max: 5, PerAddr: 2}
	addr, got := serve(t, l)
	var held []net.Conn
	for range 2 {
		dialFrom(t, "127.0.0.2", addr)
		held = append(held, <-got)
	}
	// A third from the same address is closed at once; another address
	// is served.
	if c := dialFrom(t, "127.0.0.2", addr); !closedByPeer(c) {
		t.Fatal("third connection from one address kept")
	}
	for _, from := range []string{"127.0.0.3", "127.0.0.4", "127.0.0.4"} {
		dialFrom(t, from, addr)
		held = append(held, <-got)
	}
	// Five open: the total is reached for everyone.
	if c := dialFrom(t, "127.0.0.5", addr); !closedByPeer(c) {
		t.Fatal("sixth connection kept over Max")
	}
	st := l.Stats()
	if st.Open != 5 || st.RejectedAddr != 1 || st.RejectedFull != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Closing gives the place back, once however often it is closed.
	held[0].Close()
	held[0].Close()
	dialFrom(t, "127.0.0.2", addr)
	<-got
	if st := l.Stats(); st.Open != 5 {
		t.Fatalf("open %d after a close and a new connection", st.Open)
	}
}

// Two listeners share one Budget: together they hold no more.
func TestSharedBudget(t *testing.T) {
	b := NewBudget(3)
	a1, got1 := serve(t, &Limiter{Budget: b})
	a2, got2 := serve(t, &Limiter{Budget: b})
	dialFrom(t, "127.0.0.2", a1)
	dialFrom(t, "127.0.0.2", a1)
	<-got1
	<-got1
	dialFrom(t, "127.0.0.2", a2)
	c := <-got2
	if over := dialFrom(t, "127.0.0.2", a2); !closedByPeer(over) {
		t.Fatal("the budget was exceeded")
	}
	c.Close()
	dialFrom(t, "127.0.0.2", a2)
	<-got2
	if b.Used() != 3 || b.Max() != 3 {
		t.Fatalf("budget %d of %d", b.Used(), b.Max())
	}
}
