package postfix

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

const sample = "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address=192.0.2.7\nclient_name=unknown\nhelo_name=x\nsender=a@example.net\nrecipient=b@example.org\nsasl_username=\ninstance=123.4\nfuture_attribute=ignored\n\n"

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name, in string
		wantErr  string
		client   string
	}{
		{"ok", sample, "", "192.0.2.7"},
		{"crlf", strings.ReplaceAll(sample, "\n", "\r\n"), "", "192.0.2.7"},
		{"mapped", "client_address=::ffff:192.0.2.9\n\n", "", "192.0.2.9"},
		{"no equals", "client_address=192.0.2.7\ngarbage line\n\n", "line without name=value", ""},
		{"empty", "\n", "empty request", ""},
		{"long line", "x=" + strings.Repeat("a", maxLine+10) + "\n\n", "line longer", ""},
		{"too many", manyAttrs(maxAttrs+1) + "\n", "more than 256 attributes", ""},
		{"invalid utf8", "client_address=192.0.2.7\nhelo_name=\xff\xfe\n\n", "", "192.0.2.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := readRequest(bufio.NewReaderSize(strings.NewReader(tt.in), maxLine))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Client().String(); got != tt.client {
				t.Fatalf("client = %s", got)
			}
		})
	}
}

func manyAttrs(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "a%d=b\n", i)
	}
	return b.String()
}

func FuzzPolicyRequest(f *testing.F) {
	f.Add(sample)
	f.Add("a=b\n\nc=d\n\n")
	f.Add("client_address=::ffff:1.2.3.4\r\n\r\n")
	f.Add(strings.Repeat("x", 100) + "\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReaderSize(strings.NewReader(in), maxLine)
		for range 10 {
			r, err := readRequest(br)
			if err != nil {
				return
			}
			if r.Len() == 0 || r.Len() > maxAttrs {
				t.Fatalf("request with %d attributes", r.Len())
			}
			_ = r.Client()
			_ = Defer(r.Get("recipient")).String()
		}
	})
}

func TestActionRendering(t *testing.T) {
	for _, tt := range []struct {
		a    Action
		want string
	}{
		{Dunno, "action=DUNNO"},
		{Reject("Access denied"), "action=REJECT Access denied"},
		{Defer("try\nagain"), "action=DEFER try again"},
		{Reply("421 4.7.0", "closing"), "action=421 4.7.0 closing"},
	} {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%q, want %q", got, tt.want)
		}
	}
}

// startServer serves h on a loopback port.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return l.Addr().String()
}

type client struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c: c, br: bufio.NewReader(c)}
}

func (c *client) ask(t *testing.T, req string) string {
	t.Helper()
	if _, err := c.c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := c.br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading answer: %v", err)
	}
	if blank, _ := c.br.ReadString('\n'); blank != "\n" {
		t.Fatalf("answer not followed by an empty line: %q", blank)
	}
	return strings.TrimSpace(line)
}

func TestServerReuseAndErrors(t *testing.T) {
	s := &Server{Handler: HandlerFunc(func(_ context.Context, r *Request) Answer {
		switch r.Get("recipient") {
		case "slow@x":
			time.Sleep(2 * time.Second)
		case "panic@x":
			panic("boom")
		case "bad@x":
			return Answer{Action: Reject("no")}
		}
		return Answer{Action: Dunno}
	}), HandlerTimeout: 200 * time.Millisecond}
	addr := startServer(t, s)
	c := dial(t, addr)
	for range 3 { // one connection, many requests
		if got := c.ask(t, sample); got != "action=DUNNO" {
			t.Fatalf("got %q", got)
		}
	}
	if got := c.ask(t, "recipient=bad@x\n\n"); got != "action=REJECT no" {
		t.Fatalf("got %q", got)
	}
	start := time.Now()
	if got := c.ask(t, "recipient=slow@x\n\n"); got != "action=DUNNO" || time.Since(start) > time.Second {
		t.Fatalf("slow handler: %q after %v, want DUNNO at the timeout", got, time.Since(start))
	}
	if got := c.ask(t, "recipient=panic@x\n\n"); got != "action=DUNNO" {
		t.Fatalf("panicking handler: %q", got)
	}
	// Malformed requests get the fail action; the third drops the client.
	c.ask(t, "nonsense\n\n")
	c.ask(t, "nonsense\n\n")
	c.c.Write([]byte("nonsense\n\n"))
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.br.ReadString('\n'); err == nil {
		t.Fatal("client not dropped after three malformed requests")
	}
	st := s.Stats()
	if st.Failed != 2 || st.Malformed != 3 || st.Dropped != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestHostileClientsDoNotBlockOthers(t *testing.T) {
	s := &Server{Handler: HandlerFunc(func(context.Context, *Request) Answer { return Answer{Action: Dunno} }), ReadTimeout: 300 * time.Millisecond}
	addr := startServer(t, s)
	// A slow client that never finishes its request, and one sending a huge line.
	slow := dial(t, addr)
	slow.c.Write([]byte("client_address=192.0.2.1\n"))
	huge := dial(t, addr)
	go huge.c.Write([]byte("x=" + strings.Repeat("a", 1<<20)))
	good := dial(t, addr)
	if got := good.ask(t, sample); got != "action=DUNNO" {
		t.Fatalf("got %q", got)
	}
	for _, c := range []*client{slow, huge} {
		c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.br.ReadString('\n'); err == nil {
			t.Fatal("hostile client answered instead of dropped")
		}
	}
}

// TestTarpitParksWithoutGoroutines holds many answers back and checks that
// held connections cost no goroutine, and that the answers come on time.
func TestTarpitParksWithoutGoroutines(t *testing.T) {
	const n = 500
	delay := 1500 * time.Millisecond
	s := &Server{Handler: HandlerFunc(func(_ context.Context, r *Request) Answer {
		if r.Get("recipient") == "tarpit@x" {
			return Answer{Action: Dunno, Delay: delay}
		}
		return Answer{Action: Dunno}
	})}
	addr := startServer(t, s)
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	times := make([]time.Duration, n)
	conns := make([]*client, n)
	for i := range n {
		conns[i] = dial(t, addr)
	}
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := conns[i]
			c.c.Write([]byte("recipient=tarpit@x\n\n"))
			c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if line, err := c.br.ReadString('\n'); err == nil && strings.TrimSpace(line) == "action=DUNNO" {
				times[i] = time.Since(start)
				c.br.ReadString('\n')
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Parked < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p := s.Stats().Parked; p != n {
		t.Fatalf("parked %d of %d", p, n)
	}
	// n client goroutines are ours; the server may hold a handful.
	if extra := runtime.NumGoroutine() - before - n; extra > 20 {
		t.Fatalf("%d server goroutines for %d parked connections", extra, n)
	}
	// Meanwhile a normal client is answered at once.
	if got := dial(t, addr).ask(t, sample); got != "action=DUNNO" || time.Since(start) > delay {
		t.Fatalf("normal client waited behind the tarpit: %q", got)
	}
	wg.Wait()
	for i, d := range times {
		if d < delay-50*time.Millisecond || d > delay+3*time.Second {
			t.Fatalf("answer %d after %v, want about %v", i, d, delay)
		}
	}
	// Parked connections are reused afterwards.
	if got := conns[0].ask(t, sample); got != "action=DUNNO" {
		t.Fatalf("after the tarpit: %q", got)
	}
}
