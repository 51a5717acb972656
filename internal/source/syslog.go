package source

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/connlimit"
	"github.com/rampart-dev/rampart/internal/logline"
)

// Syslog receives syslog messages over UDP, one a datagram, and over TCP,
// framed per RFC 6587 by octet counting ("LEN SP MSG") or by a trailing
// newline, told apart frame by frame. RFC 3164 and RFC 5424 payloads are
// both understood. Lines come with Origin "syslog".
//
// A TCP client that sends a length prefix beyond any sane frame, takes
// longer than IdleTimeout to finish a frame, or errs three times (frames
// over MaxMessage, binary records) is disconnected; other clients are not
// affected. Idle connections cannot lock senders out: one address (an IPv6
// /64) may hold PerAddr of the MaxConns connections, and a connection that
// sends nothing within SilentTimeout of its opening is closed.
type Syslog struct {
	// UDP and TCP are the sockets to serve; either may be nil. Run closes
	// them when it returns. ListenSyslog opens both; a daemon may instead
	// open them itself, before it drops privileges.
	UDP net.PacketConn
	TCP net.Listener

	Parser *logline.Parser // nil: a zero Parser
	Logger *slog.Logger    // nil: silent

	MaxMessage    int           // longest message kept; default and at most logline.MaxLen
	MaxConns      int           // TCP connections served at once; default 256
	PerAddr       int           // TCP connections from one address at once; default 16
	IdleTimeout   time.Duration // how long a TCP client may take to start, and to finish, a frame; default 5m
	SilentTimeout time.Duration // how long a new TCP client may take to send its first byte; default 30s
	// Budget is the descriptors shared with the daemon's other listeners;
	// nil: none.
	Budget *connlimit.Budget

	lim connlimit.Limiter

	emitMu sync.Mutex
	c      counters
}

// ListenSyslog opens the sockets for a Syslog: UDP on udpAddr and TCP on
// tcpAddr ("127.0.0.1:514", ":5514"), either of which may be empty.
func ListenSyslog(udpAddr, tcpAddr string) (*Syslog, error) {
	s := &Syslog{}
	if udpAddr != "" {
		pc, err := net.ListenPacket("udp", udpAddr)
		if err != nil {
			return nil, fmt.Errorf("syslog: %w", err)
		}
		if u, ok := pc.(*net.UDPConn); ok {
			// Bursts arrive faster than they are parsed; the kernel caps
			// this at net.core.rmem_max.
			_ = u.SetReadBuffer(4 << 20)
		}
		s.UDP = pc
	}
	if tcpAddr != "" {
		l, err := net.Listen("tcp", tcpAddr)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("syslog: %w", err)
		}
		s.TCP = l
	}
	return s, nil
}

// Close closes the sockets. Run does this itself; Close is for a Syslog
// that is never run.
func (s *Syslog) Close() error {
	var errs []error
	if s.UDP != nil {
		errs = append(errs, s.UDP.Close())
	}
	if s.TCP != nil {
		errs = append(errs, s.TCP.Close())
	}
	return errors.Join(errs...)
}

// Stats returns the counts so far; it is safe to call while Run is going.
func (s *Syslog) Stats() Stats {
	st := s.c.stats()
	ls := s.lim.Stats()
	st.Rejected = ls.RejectedFull + ls.RejectedAddr
	return st
}

// Run serves until ctx is cancelled, then closes the sockets and every
// connection, waits for them to finish, and returns nil. It returns an
// error when there is nothing to serve or a socket fails for good.
func (s *Syslog) Run(ctx context.Context, emit func(logline.Line)) error {
	if s.UDP == nil && s.TCP == nil {
		return errors.New("syslog: no socket to serve")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv := &syslogServer{
		Syslog: s,
		parser: parser(s.Parser),
		log:    logger(s.Logger),
		emit:   emit,
		max:    s.MaxMessage,
		conns:  make(map[net.Conn]struct{}),
	}
	if srv.max <= 0 || srv.max > logline.MaxLen {
		srv.max = logline.MaxLen
	}
	s.lim.Max, s.lim.PerAddr, s.lim.Budget = s.MaxConns, s.PerAddr, s.Budget
	if s.lim.Max <= 0 {
		s.lim.Max = 256
	}
	if s.lim.PerAddr <= 0 {
		s.lim.PerAddr = 16
	}
	if srv.idle = s.IdleTimeout; srv.idle <= 0 {
		srv.idle = 5 * time.Minute
	}
	if srv.silent = s.SilentTimeout; srv.silent <= 0 {
		srv.silent = 30 * time.Second
	}
	srv.silent = min(srv.silent, srv.idle)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		if err != nil && ctx.Err() == nil {
			errOnce.Do(func() { firstErr = err })
			cancel()
		}
	}
	wg.Go(func() {
		<-ctx.Done() // cancelled by the caller, or by fail
		srv.shutdown()
	})
	if s.UDP != nil {
		wg.Go(func() { fail(srv.serveUDP(ctx)) })
	}
	if s.TCP != nil {
		srv.tcp = s.lim.Listen(s.TCP)
		wg.Go(func() { fail(srv.serveTCP(ctx, &wg)) })
	}
	wg.Wait()
	return firstErr
}

// syslogServer is the state of one Syslog.Run.
type syslogServer struct {
	*Syslog
	parser       *logline.Parser
	log          *slog.Logger
	emit         func(logline.Line)
	max          int
	idle, silent time.Duration
	tcp          net.Listener // s.TCP within the limits

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// shutdown closes the sockets and the open connections, which ends every
// read in progress.
func (srv *syslogServer) shutdown() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.closed = true
	srv.Close()
	for c := range srv.conns {
		c.Close()
	}
}

// handle parses one message and emits it. A parser panic on hostile
// input is turned into a skipped record, not a dead daemon.
func (srv *syslogServer) handle(rec []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			srv.log.Error("syslog: parser panic", "panic", p, "record", fmt.Sprintf("%.200q", rec))
			err = fmt.Errorf("parser panic: %v", p)
			srv.c.invalid.Add(1)
		}
	}()
	l, err := srv.parser.Parse(string(rec))
	if err != nil {
		srv.c.skip(err)
		return err
	}
	srv.emitMu.Lock()
	defer srv.emitMu.Unlock()
	srv.c.deliver(l, nil, "syslog", srv.emit)
	return nil
}

func (srv *syslogServer) serveUDP(ctx context.Context) error {
	buf := make([]byte, 64<<10)
	var backoff time.Duration
	for {
		n, _, err := srv.UDP.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("syslog: udp: %w", err)
			}
			backoff = nextBackoff(backoff)
			srv.log.Warn("syslog: udp read", "err", err, "backoff_s", backoff.Seconds())
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		rec := bytes.TrimRight(buf[:n], "\r\n\x00")
		if len(rec) > srv.max {
			srv.c.tooLong.Add(1)
			continue
		}
		srv.handle(rec)
	}
}

func (srv *syslogServer) serveTCP(ctx context.Context, wg *sync.WaitGroup) error {
	var backoff time.Duration
	for {
		conn, err := srv.tcp.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("syslog: tcp: %w", err)
			}
			// Out of file descriptors, most likely: wait for some to close.
			backoff = nextBackoff(backoff)
			srv.log.Warn("syslog: accept", "err", err, "backoff_s", backoff.Seconds())
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		srv.mu.Lock()
		if srv.closed {
			srv.mu.Unlock()
			conn.Close()
			return nil
		}
		srv.conns[conn] = struct{}{}
		srv.mu.Unlock()
		wg.Go(func() { srv.serveConn(conn) })
	}
}

// maxErrors is how many bad frames a TCP client may send before it is dropped.
const maxErrors = 3

func (srv *syslogServer) serveConn(conn net.Conn) {
	defer func() {
		srv.mu.Lock()
		delete(srv.conns, conn)
		srv.mu.Unlock()
		conn.Close()
	}()
	fr := newFramer(conn, srv.max)
	bad := 0
	// A sender sends as it connects; a peer silent for srv.silent only
	// holds a place.
	conn.SetReadDeadline(time.Now().Add(srv.silent))
	if _, err := fr.r.Peek(1); err != nil {
		if isTimeout(err) {
			srv.c.silent.Add(1)
		}
		return
	}
	for {
		// Waiting for a frame to begin may take up to idle; so may the
		// frame itself, however slowly it trickles in.
		conn.SetReadDeadline(time.Now().Add(srv.idle))
		if _, err := fr.r.Peek(1); err != nil {
			return // closed, or idle: not misbehaviour
		}
		conn.SetReadDeadline(time.Now().Add(srv.idle))
		rec, err := fr.next()
		switch {
		case err == nil:
			if herr := srv.handle(rec); herr != nil && !errors.Is(herr, logline.ErrEmpty) && !errors.Is(herr, logline.ErrFuture) {
				bad++
			}
		case errors.Is(err, errFrameTooLong):
			srv.c.tooLong.Add(1)
			bad++
		case errors.Is(err, errFraming):
			srv.c.invalid.Add(1)
			srv.c.dropped.Add(1)
			return
		case errors.Is(err, io.EOF):
			return
		default:
			// A timeout in the middle of a frame (slowloris), a frame cut
			// short, or a broken connection.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, io.ErrUnexpectedEOF) {
				srv.c.dropped.Add(1)
			}
			return
		}
		if bad >= maxErrors {
			srv.c.dropped.Add(1)
			return
		}
	}
}

// Framing errors. errFrameTooLong leaves the stream at the next frame;
// errFraming means the stream cannot be followed any further.
var (
	errFrameTooLong = errors.New("syslog frame too long")
	errFraming      = errors.New("syslog framing broken")
)

// framer splits a TCP stream into syslog frames (RFC 6587): octet counted
// ("LEN SP MSG", LEN without a leading zero) when a frame starts with a
// length and a space, newline terminated otherwise.
type framer struct {
	r       *bufio.Reader
	max     int    // longest frame returned
	discard int    // longest oversize frame skipped rather than refused
	buf     []byte // octet-counted frames are read into this
}

// discardFactor bounds how much of an oversize frame is read and thrown
// away, in multiples of the largest frame, before the stream is given up.
const discardFactor = 64

func newFramer(r io.Reader, max int) *framer {
	return &framer{
		r:       bufio.NewReaderSize(r, max+16),
		max:     max,
		discard: discardFactor * max,
		buf:     make([]byte, max),
	}
}

// next returns the next frame without its framing; the slice is valid
// until the next call. At the end of the stream it returns io.EOF, after a
// last newline-framed record that lacks its newline.
func (f *framer) next() ([]byte, error) {
	if n, ok, err := f.length(); err != nil {
		return nil, err
	} else if ok {
		return f.counted(n)
	}
	return f.line()
}

// maxDigits is the longest length prefix read; longer digit runs are text.
const maxDigits = 9

// length reads an octet count and its space, if the stream starts with one.
func (f *framer) length() (n int, ok bool, err error) {
	b, err := f.r.Peek(1)
	if err != nil {
		return 0, false, err
	}
	if b[0] < '1' || b[0] > '9' {
		return 0, false, nil
	}
	for i := 1; i <= maxDigits; i++ {
		b, err := f.r.Peek(i + 1)
		if len(b) <= i {
			if errors.Is(err, io.EOF) || errors.Is(err, bufio.ErrBufferFull) {
				return 0, false, nil // digits, then the end: a last line
			}
			return 0, false, err
		}
		c := b[i]
		if c == ' ' {
			for _, d := range b[:i] {
				n = n*10 + int(d-'0')
			}
			f.r.Discard(i + 1)
			return n, true, nil
		}
		if c < '0' || c > '9' {
			return 0, false, nil
		}
	}
	return 0, false, nil
}

// counted reads an octet-counted frame body of n bytes.
func (f *framer) counted(n int) ([]byte, error) {
	if n > f.max {
		if n > f.discard {
			return nil, fmt.Errorf("%w: length %d", errFraming, n)
		}
		if _, err := f.r.Discard(n); err != nil {
			return nil, unexpectedEOF(err)
		}
		return nil, errFrameTooLong
	}
	if _, err := io.ReadFull(f.r, f.buf[:n]); err != nil {
		return nil, unexpectedEOF(err)
	}
	return f.buf[:n], nil
}

// line reads a newline-terminated frame.
func (f *framer) line() ([]byte, error) {
	rec, err := f.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		skipped := len(rec)
		for errors.Is(err, bufio.ErrBufferFull) {
			if skipped > f.discard {
				return nil, fmt.Errorf("%w: no newline in %d bytes", errFraming, skipped)
			}
			rec, err = f.r.ReadSlice('\n')
			skipped += len(rec)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		return nil, errFrameTooLong
	}
	if err != nil && (!errors.Is(err, io.EOF) || len(rec) == 0) {
		return nil, err
	}
	rec = bytes.TrimSuffix(rec, []byte{'\n'})
	if len(rec) > f.max {
		return nil, errFrameTooLong
	}
	return rec, nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// nextBackoff doubles a back-off from 5ms up to 1s.
func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}

// sleepCtx waits for d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
