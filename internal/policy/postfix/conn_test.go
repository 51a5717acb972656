package postfix

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// panicListener's connections panic when they read "boom": a broken
// net.Conn, or any bug outside the handler.
type panicListener struct{ net.Listener }

func (l panicListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return panicConn{c}, nil
}

type panicConn struct{ net.Conn }

func (c panicConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if bytes.Contains(p[:n], []byte("boom")) {
		panic("boom")
	}
	return n, err
}

// A panic anywhere in a connection, not only in the handler, drops that
// connection alone, and the server goes on serving and shuts down.
func TestPanicInConnectionDropsItAlone(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: HandlerFunc(func(context.Context, *Request) Answer { return Answer{Action: Dunno} })}
	served := make(chan error, 1)
	go func() { served <- s.Serve(panicListener{l}) }()
	bad := dial(t, l.Addr().String())
	bad.c.Write([]byte("boom\n"))
	bad.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := bad.br.ReadByte(); err != io.EOF {
		t.Fatalf("the panicking connection: %v, want it closed", err)
	}
	good := dial(t, l.Addr().String())
	if got := good.ask(t, sample); got != "action=DUNNO" {
		t.Fatalf("another client after the panic: %q", got)
	}
	if st := s.Stats(); st.Dropped != 1 || st.Requests != 1 {
		t.Fatalf("stats %+v", st)
	}
	good.c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (a connection's count not released?)", err)
	}
	if err := <-served; err != ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
}

// A connection that says nothing is closed after SilentTimeout, not after
// the idle timeout meant for Postfix between questions; one that has asked
// keeps its connection.
func TestSilentPeersClosed(t *testing.T) {
	s := &Server{Handler: HandlerFunc(func(context.Context, *Request) Answer { return Answer{Action: Dunno} }), SilentTimeout: 200 * time.Millisecond, MaxConns: 3}
	addr := startServer(t, s)
	asker := dial(t, addr)
	asker.ask(t, sample)
	quiet := []*client{dial(t, addr), dial(t, addr)}
	over := dial(t, addr) // the fourth: over MaxConns
	over.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := over.br.ReadByte(); err != io.EOF {
		t.Fatalf("connection over MaxConns: %v, want closed", err)
	}
	for _, c := range quiet {
		c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Fatalf("silent peer: %v, want closed", err)
		}
	}
	if got := asker.ask(t, sample); got != "action=DUNNO" {
		t.Fatalf("the peer that asked, after the silent timeout: %q", got)
	}
	if st := s.Stats(); st.Silent != 2 || st.Refused != 1 || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}
