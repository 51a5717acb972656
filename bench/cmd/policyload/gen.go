package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// generator builds requests and runs the phases.
type generator struct {
	o         options
	clients   []netip.Addr  // Postfix client addresses; the first len(users) are authenticated ones
	users     []string      // SASL users of the authenticated clients
	logins    []login       // Dovecot logins
	heldAddrs []netip.Addr  // suspicious addresses the held sessions use
	heldCount *atomic.Int64 // held answers received so far; nil before any session is held
}

type login struct {
	user string
	addr netip.Addr
}

// Networks the load's client addresses come from: public, and far from
// 198.18.0.0/15 where the held addresses are.
var clientNets = []byte{23, 31, 37, 45, 62, 77, 80, 85, 91, 94, 109, 151, 176, 185, 188, 193, 195, 212, 213, 217}

func newGenerator(o options) *generator {
	g := &generator{o: o}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[netip.Addr]bool{}
	addr := func() netip.Addr {
		for {
			a := netip.AddrFrom4([4]byte{clientNets[r.IntN(len(clientNets))], byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
			if !seen[a] {
				seen[a] = true
				return a
			}
		}
	}
	for range max(o.clients, 1) {
		g.clients = append(g.clients, addr())
	}
	nsasl := min(len(g.clients), 1000)
	for i := range nsasl {
		g.users = append(g.users, fmt.Sprintf("user%d@example.org", i))
	}
	for i := range max(o.logins, 1) {
		g.logins = append(g.logins, login{user: fmt.Sprintf("mailbox%d@example.org", i), addr: addr()})
	}
	for i := range max(o.heldAddrs, 1) {
		// Each in its own /24 and /16: one bad address per prefix never
		// makes the prefix suspect.
		g.heldAddrs = append(g.heldAddrs, netip.AddrFrom4([4]byte{198, 18 + byte(i%2), byte(i), 7}))
	}
	return g
}

// postfixRequest appends an RCPT-stage request as Postfix 3.7's smtpd sends
// it, for a random client (a fraction of them authenticated).
func (g *generator) postfixRequest(b []byte, r *rand.Rand) []byte {
	i := r.IntN(len(g.clients))
	user := ""
	if r.Float64() < g.o.sasl {
		i = r.IntN(len(g.users))
		user = g.users[i]
	}
	ip := g.clients[i]
	var ipb [16]byte
	ips := ip.AppendTo(ipb[:0])
	rcpts := r.IntN(3)
	b = append(b, "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nhelo_name=mail"...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, ".example.net\nqueue_id="...)
	if rcpts > 0 {
		b = append(b, "4bKq"...)
		b = strconv.AppendUint(b, r.Uint64()&0xffffffffff, 36)
	}
	b = append(b, "\nsender=sender"...)
	b = strconv.AppendInt(b, int64(r.IntN(100000)), 10)
	b = append(b, "@example.net\nrecipient=rcpt"...)
	b = strconv.AppendInt(b, int64(r.IntN(5000)), 10)
	b = append(b, "@example.org\nrecipient_count="...)
	b = strconv.AppendInt(b, int64(rcpts), 10)
	b = append(b, "\nclient_address="...)
	b = append(b, ips...)
	b = append(b, "\nclient_name=mail-"...)
	b = append(b, ips...)
	b = append(b, ".example.net\nreverse_client_name=mail-"...)
	b = append(b, ips...)
	b = append(b, ".example.net\ninstance="...)
	b = strconv.AppendUint(b, r.Uint64()&0xfffff, 16)
	b = append(b, '.')
	b = strconv.AppendUint(b, r.Uint64()&0xffffffff, 16)
	b = append(b, '.')
	b = strconv.AppendUint(b, r.Uint64()&0xfffff, 16)
	b = append(b, ".0\nsasl_method="...)
	if user != "" {
		b = append(b, "PLAIN"...)
	}
	b = append(b, "\nsasl_username="...)
	b = append(b, user...)
	b = append(b, "\nsasl_sender=\nsize="...)
	b = strconv.AppendInt(b, int64(1000+r.IntN(200000)), 10)
	b = append(b, "\nccert_subject=\nccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=TLSv1.3\nencryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\netrn_domain=\nstress=\nclient_port="...)
	b = strconv.AppendInt(b, int64(1024+r.IntN(64000)), 10)
	b = append(b, "\npolicy_context=\nserver_address=192.0.2.25\nserver_port="...)
	if user != "" {
		b = append(b, "587"...)
	} else {
		b = append(b, "25"...)
	}
	b = append(b, "\n\n"...)
	return b
}

// heldRequest is the request a held session sends: an RCPT from a
// suspicious client.
func (g *generator) heldRequest(i int) []byte {
	ip := g.heldAddrs[i%len(g.heldAddrs)].String()
	return fmt.Appendf(nil, "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nhelo_name=bot%d.invalid\nqueue_id=\nsender=spam%d@example.com\nrecipient=victim%d@example.org\nrecipient_count=0\nclient_address=%s\nclient_name=unknown\nreverse_client_name=unknown\ninstance=%x.0.0.0\nsasl_method=\nsasl_username=\nsasl_sender=\nsize=0\nccert_subject=\nccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=\nencryption_cipher=\nencryption_keysize=0\netrn_domain=\nstress=\nclient_port=%d\npolicy_context=\nserver_address=192.0.2.25\nserver_port=25\n\n",
		i, i, i, ip, i, 1024+i%60000)
}

// dovecotBody appends the JSON Dovecot 2.3 posts for a login: the default
// auth_policy_request_attributes, plus the outcome for a report.
func (g *generator) dovecotBody(b []byte, l login, report bool, r *rand.Rand) []byte {
	b = append(b, `{"device_id":"","login":"`...)
	b = append(b, l.user...)
	b = append(b, `","protocol":"imap","pwhash":"`...)
	b = strconv.AppendUint(b, r.Uint64()&0xffffffff, 16)
	b = append(b, `","remote":"`...)
	b = l.addr.AppendTo(b)
	b = append(b, `","session_id":"`...)
	b = strconv.AppendUint(b, r.Uint64(), 36)
	if report {
		b = append(b, `","success":true,"policy_reject":false,"tls":true}`...)
	} else {
		b = append(b, `"}`...)
	}
	return b
}

// dial connects to "host:port" over TCP or to "unix:/path".
func dial(addr string, timeout time.Duration) (net.Conn, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return net.DialTimeout("unix", path, timeout)
	}
	return net.DialTimeout("tcp", addr, timeout)
}

// httpConn is a minimal HTTP/1.1 keep-alive client for the Dovecot policy
// protocol: one request at a time, as Dovecot's auth process sends them.
type httpConn struct {
	c         net.Conn
	br        *bufio.Reader
	host      string
	auth      string
	buf, body []byte
}

func dialHTTP(addr, auth string) (*httpConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &httpConn{c: c, br: bufio.NewReaderSize(c, 4096), host: addr, auth: auth}, nil
}

// post sends body to /?command=cmd and returns the HTTP code and the
// answer's "status".
func (h *httpConn) post(cmd string, body []byte) (code, status int, err error) {
	b := append(h.buf[:0], "POST /?command="...)
	b = append(b, cmd...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, h.host...)
	b = append(b, "\r\nUser-Agent: dovecot/2.3.19\r\n"...)
	if h.auth != "" {
		b = append(b, "Authorization: "...)
		b = append(b, h.auth...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	h.buf = b
	h.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := h.c.Write(b); err != nil {
		return 0, 0, err
	}
	line, err := h.br.ReadSlice('\n')
	if err != nil {
		return 0, 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	code, _ = strconv.Atoi(string(line[9:12]))
	clen := -1
	for {
		line, err = h.br.ReadSlice('\n')
		if err != nil {
			return code, 0, err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte{':'}); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			clen, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if clen < 0 || clen > 1<<20 {
		return code, 0, fmt.Errorf("answer without a usable Content-Length")
	}
	h.body = slices.Grow(h.body[:0], clen)[:clen]
	if _, err := io.ReadFull(h.br, h.body); err != nil {
		return code, 0, err
	}
	if i := bytes.Index(h.body, []byte(`"status":`)); i >= 0 {
		rest := h.body[i+len(`"status":`):]
		j := 0
		for j < len(rest) && (rest[j] == '-' || rest[j] >= '0' && rest[j] <= '9') {
			j++
		}
		status, _ = strconv.Atoi(string(rest[:j]))
	}
	return code, status, nil
}

// seed gives each held address one failed login (under its own user, so
// no user looks sprayed), through the Dovecot report command, and checks
// that the engine now delays it.
func (g *generator) seed(ctx context.Context) error {
	h, err := dialHTTP(g.o.dovecot, g.o.auth)
	if err != nil {
		return err
	}
	defer h.c.Close()
	for i, a := range g.heldAddrs {
		body := fmt.Appendf(nil, `{"device_id":"","login":"held%d@example.net","protocol":"imap","pwhash":"00","remote":"%s","session_id":"seed%d","success":false,"policy_reject":false,"tls":false}`, i, a, i)
		if code, _, err := h.post("report", body); err != nil || code != 200 {
			return fmt.Errorf("report for %s: code %d, %v", a, code, err)
		}
	}
	for i, a := range g.heldAddrs {
		body := fmt.Appendf(nil, `{"device_id":"","login":"held%d@example.net","protocol":"imap","pwhash":"00","remote":"%s","session_id":"check%d"}`, i, a, i)
		code, st, err := h.post("allow", body)
		if err != nil || code != 200 {
			return fmt.Errorf("allow for %s: code %d, %v", a, code, err)
		}
		if st <= 0 {
			return fmt.Errorf("%s, after a failure, is answered status %d, not a delay: the engine does not consider it suspicious", a, st)
		}
	}
	logf("seeded %d held addresses with a failure each; Dovecot's policy now delays them", len(g.heldAddrs))
	return ctx.Err()
}

// Latency summarises a latency sample, in microseconds.
type Latency struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_us"`
	P50  float64 `json:"p50_us"`
	P90  float64 `json:"p90_us"`
	P99  float64 `json:"p99_us"`
	P999 float64 `json:"p99_9_us"`
	Max  float64 `json:"max_us"`
}

func summarize(ns []int64) Latency {
	if len(ns) == 0 {
		return Latency{}
	}
	slices.Sort(ns)
	q := func(p float64) float64 {
		i := int(p*float64(len(ns))+0.5) - 1
		return float64(ns[min(max(i, 0), len(ns)-1)]) / 1e3
	}
	var sum float64
	for _, v := range ns {
		sum += float64(v)
	}
	return Latency{N: len(ns), Mean: sum / float64(len(ns)) / 1e3, P50: q(0.50), P90: q(0.90), P99: q(0.99), P999: q(0.999), Max: float64(ns[len(ns)-1]) / 1e3}
}

// Phase is one load phase's result.
type Phase struct {
	Name            string   `json:"name"`
	Proto           string   `json:"proto"`
	Workers         int      `json:"workers"`
	TargetRate      int      `json:"target_rate"` // 0: as fast as answers come
	Seconds         float64  `json:"seconds"`
	Requests        int64    `json:"requests"`
	Rate            float64  `json:"decisions_per_s"`
	Errors          int64    `json:"errors"`
	Unexpected      int64    `json:"unexpected"` // answers other than DUNNO / status 0
	FirstUnexpected string   `json:"first_unexpected,omitempty"`
	FirstError      string   `json:"first_error,omitempty"`
	Latency         Latency  `json:"latency"`           // from write(2) to the end of the answer
	Scheduled       *Latency `json:"latency_scheduled"` // paced only: from the scheduled send time
	DaemonCPU       float64  `json:"daemon_cpu_cores"`  // CPU seconds per second of the phase
	LoadCPU         float64  `json:"generator_cpu_cores"`
	LoadAvg         string   `json:"loadavg_end"`
	Parked          int      `json:"parked_end"` // held sessions parked at the end, per the daemon
	HeldAnswers     int64    `json:"held_answers"`
}

func (p *Phase) String() string {
	s := fmt.Sprintf("%.0f decisions/s, p50 %.0fµs p99 %.0fµs p99.9 %.0fµs max %.0fµs; daemon %.2f cores, generator %.2f cores; %d errors, %d unexpected",
		p.Rate, p.Latency.P50, p.Latency.P99, p.Latency.P999, p.Latency.Max, p.DaemonCPU, p.LoadCPU, p.Errors, p.Unexpected)
	if p.Scheduled != nil {
		s += fmt.Sprintf("; from schedule p99 %.0fµs max %.0fµs", p.Scheduled.P99, p.Scheduled.Max)
	}
	if p.FirstUnexpected != "" {
		s += "; first unexpected: " + p.FirstUnexpected
	}
	if p.FirstError != "" {
		s += "; first error: " + p.FirstError
	}
	return s
}

type workerResult struct {
	lat, sched       []int64
	errors, unexpect int64
	firstErr, first  string
}

// phase runs one load phase: rate 0 closed loop, else paced in all.
func (g *generator) phase(ctx context.Context, d *daemonProbe, proto string, rate int, dur time.Duration) (*Phase, error) {
	n := g.o.workers
	addr := g.o.postfix
	if proto == "dovecot" {
		addr = g.o.dovecot
	}
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := dial(addr, 5*time.Second)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return nil, err
		}
		conns[i] = c
	}
	results := make([]workerResult, n)
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(n) * float64(time.Second) / float64(rate))
	}
	heldBefore := int64(0)
	if g.heldCount != nil {
		heldBefore = g.heldCount.Load()
	}
	start := time.Now().Add(20 * time.Millisecond)
	end := start.Add(dur)
	cpu0, dcpu0 := selfCPU(), d.cpu()
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[w]
			est := int(dur.Seconds() * 40000 / float64(n))
			if rate > 0 {
				est = int(dur/interval) + 2
				res.sched = make([]int64, 0, est)
			}
			res.lat = make([]int64, 0, est)
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			var offset time.Duration
			if rate > 0 {
				offset = interval * time.Duration(w) / time.Duration(n)
			}
			if proto == "postfix" {
				g.postfixWorker(ctx, conns[w], r, res, start, end, offset, interval)
			} else {
				g.dovecotWorker(ctx, conns[w], r, res, start, end, offset, interval)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu1, dcpu1 := selfCPU(), d.cpu()
	for _, c := range conns {
		c.Close()
	}
	p := &Phase{Proto: proto, Workers: n, TargetRate: rate, Seconds: dur.Seconds(), LoadAvg: loadAvg()}
	var lat, sched []int64
	for _, r := range results {
		lat = append(lat, r.lat...)
		sched = append(sched, r.sched...)
		p.Errors += r.errors
		p.Unexpected += r.unexpect
		if p.FirstError == "" {
			p.FirstError = r.firstErr
		}
		if p.FirstUnexpected == "" {
			p.FirstUnexpected = r.first
		}
	}
	p.Requests = int64(len(lat))
	p.Rate = float64(len(lat)) / dur.Seconds()
	p.Latency = summarize(lat)
	if rate > 0 {
		s := summarize(sched)
		p.Scheduled = &s
	}
	p.DaemonCPU = (dcpu1 - dcpu0).Seconds() / wall.Seconds()
	p.LoadCPU = (cpu1 - cpu0).Seconds() / wall.Seconds()
	if g.heldCount != nil {
		p.HeldAnswers = g.heldCount.Load() - heldBefore
	}
	if st, err := d.status(); err == nil && st.Policy.Postfix != nil {
		p.Parked = st.Policy.Postfix.Parked
	}
	return p, nil
}

// pace waits for the k-th scheduled send and returns its time, or false
// when the phase is over.
func pace(start, end time.Time, offset, interval time.Duration, k int) (time.Time, bool) {
	if interval == 0 {
		now := time.Now()
		if now.Before(start) {
			time.Sleep(start.Sub(now))
			now = time.Now()
		}
		return now, now.Before(end)
	}
	at := start.Add(offset + time.Duration(k)*interval)
	if !at.Before(end) {
		return at, false
	}
	if d := time.Until(at); d > 0 {
		time.Sleep(d)
	}
	return at, time.Now().Before(end.Add(5 * time.Second))
}

func (g *generator) postfixWorker(ctx context.Context, c net.Conn, r *rand.Rand, res *workerResult, start, end time.Time, offset, interval time.Duration) {
	br := bufio.NewReaderSize(c, 1024)
	buf := make([]byte, 0, 2048)
	c.SetDeadline(end.Add(30 * time.Second))
	for k := 0; ctx.Err() == nil; k++ {
		at, ok := pace(start, end, offset, interval, k)
		if !ok {
			return
		}
		buf = g.postfixRequest(buf[:0], r)
		t0 := time.Now()
		_, err := c.Write(buf)
		var line []byte
		if err == nil {
			line, err = br.ReadSlice('\n')
			if err == nil {
				ok := string(line) == "action=DUNNO\n"
				if !ok {
					res.unexpect++
					if res.first == "" {
						res.first = string(bytes.TrimSpace(line))
					}
				}
				var blank []byte
				blank, err = br.ReadSlice('\n')
				if err == nil && len(blank) != 1 {
					err = fmt.Errorf("answer not ended by an empty line: %q", blank)
				}
			}
		}
		t1 := time.Now()
		if err != nil {
			res.errors++
			if res.firstErr == "" {
				res.firstErr = err.Error()
			}
			return
		}
		res.lat = append(res.lat, int64(t1.Sub(t0)))
		if interval > 0 {
			res.sched = append(res.sched, int64(t1.Sub(at)))
		}
	}
}

func (g *generator) dovecotWorker(ctx context.Context, c net.Conn, r *rand.Rand, res *workerResult, start, end time.Time, offset, interval time.Duration) {
	h := &httpConn{c: c, br: bufio.NewReaderSize(c, 4096), host: g.o.dovecot, auth: g.o.auth}
	body := make([]byte, 0, 512)
	var l login
	for k := 0; ctx.Err() == nil; k++ {
		at, ok := pace(start, end, offset, interval, k)
		if !ok {
			return
		}
		// Each login is an allow, then a report of its success.
		report := k%2 == 1
		if !report {
			l = g.logins[r.IntN(len(g.logins))]
		}
		body = g.dovecotBody(body[:0], l, report, r)
		cmd := "allow"
		if report {
			cmd = "report"
		}
		t0 := time.Now()
		code, st, err := h.post(cmd, body)
		t1 := time.Now()
		if err != nil {
			res.errors++
			if res.firstErr == "" {
				res.firstErr = err.Error()
			}
			return
		}
		if code != 200 || st != 0 {
			res.unexpect++
			if res.first == "" {
				res.first = fmt.Sprintf("%s: HTTP %d, status %d", cmd, code, st)
			}
		}
		res.lat = append(res.lat, int64(t1.Sub(t0)))
		if interval > 0 {
			res.sched = append(res.sched, int64(t1.Sub(at)))
		}
	}
}

// HeldResult describes the held sessions.
type HeldResult struct {
	Sessions   int     `json:"sessions"`
	Addrs      int     `json:"addresses"`
	Opened     int64   `json:"opened"`
	DialErrors int64   `json:"dial_errors"`
	Answers    int64   `json:"answers"`     // held answers received (each re-sent)
	Early      int64   `json:"early"`       // answered in under a second: not held
	Unexpected int64   `json:"unexpected"`  // answers other than DUNNO
	Errors     int64   `json:"errors"`      // connections lost while held
	HoldP50    float64 `json:"hold_p50_s"`  // how long answers were held
	HoldMin    float64 `json:"hold_min_s"`  //
	HoldMax    float64 `json:"hold_max_s"`  //
	RampS      float64 `json:"ramp_s"`      // opening them took
	ParkedAt   int     `json:"parked_ramp"` // parked per the daemon after the ramp
}

// holder keeps the tarpitted sessions.
type holder struct {
	g      *generator
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
	holds []int64

	opened, dialErrors, early, unexpected, errs atomic.Int64
	res                                         HeldResult
}

// startHeld prepares the held sessions; ramp opens them.
func (g *generator) startHeld(ctx context.Context) *holder {
	h := &holder{g: g}
	h.ctx, h.cancel = context.WithCancel(ctx)
	g.heldCount = &atomic.Int64{}
	return h
}

// ramp opens the sessions over -ramp and waits until the daemon has parked
// nearly all of them.
func (h *holder) ramp(ctx context.Context, d *daemonProbe) error {
	n := h.g.o.held
	logf("opening %d held sessions over %v from %d addresses", n, h.g.o.ramp, len(h.g.heldAddrs))
	t0 := time.Now()
	step := h.g.o.ramp / time.Duration(n)
	for i := range n {
		if d := time.Until(t0.Add(time.Duration(i) * step)); d > 0 {
			time.Sleep(d)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		h.wg.Add(1)
		go h.session(i)
	}
	h.res.RampS = time.Since(t0).Seconds()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if d.control == "" {
			time.Sleep(h.g.o.settle)
			break
		}
		st, err := d.status()
		if err != nil {
			return fmt.Errorf("daemon status: %w", err)
		}
		p := st.Policy.Postfix
		if p == nil {
			return fmt.Errorf("daemon status has no Postfix policy server")
		}
		h.res.ParkedAt = p.Parked
		if p.Parked >= n*99/100 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after the ramp only %d of %d held sessions are parked (%d opened, %d dial errors, %d answered early)", p.Parked, n, h.opened.Load(), h.dialErrors.Load(), h.early.Load())
		}
		time.Sleep(200 * time.Millisecond)
	}
	logf("%d held sessions open, %d parked per the daemon, ramp %.1fs", h.opened.Load(), h.res.ParkedAt, h.res.RampS)
	if e := h.dialErrors.Load(); e > 0 {
		return fmt.Errorf("%d held sessions could not connect", e)
	}
	return nil
}

func (h *holder) session(i int) {
	defer h.wg.Done()
	c, err := dial(h.g.o.postfix, 10*time.Second)
	if err != nil {
		h.dialErrors.Add(1)
		return
	}
	h.mu.Lock()
	if h.ctx.Err() != nil {
		h.mu.Unlock()
		c.Close()
		return
	}
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	h.opened.Add(1)
	req := h.g.heldRequest(i)
	br := bufio.NewReaderSize(c, 64)
	for {
		t0 := time.Now()
		_, err := c.Write(req)
		var line []byte
		if err == nil {
			line, err = br.ReadSlice('\n')
			if err == nil {
				_, err = br.ReadSlice('\n')
			}
		}
		if err != nil {
			if h.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				h.errs.Add(1)
			}
			return
		}
		held := time.Since(t0)
		h.g.heldCount.Add(1)
		if string(line) != "action=DUNNO\n" {
			h.unexpected.Add(1)
		}
		h.mu.Lock()
		h.holds = append(h.holds, int64(held))
		h.mu.Unlock()
		if held < time.Second {
			// Not held: do not turn into load.
			h.early.Add(1)
			select {
			case <-time.After(time.Second):
			case <-h.ctx.Done():
				return
			}
		}
	}
}

// stop closes the sessions and reports on them.
func (h *holder) stop() HeldResult {
	h.mu.Lock()
	h.cancel()
	for _, c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
	r := h.res
	r.Sessions, r.Addrs = h.g.o.held, len(h.g.heldAddrs)
	r.Opened, r.DialErrors = h.opened.Load(), h.dialErrors.Load()
	r.Answers = h.g.heldCount.Load()
	r.Early, r.Unexpected, r.Errors = h.early.Load(), h.unexpected.Load(), h.errs.Load()
	if len(h.holds) > 0 {
		s := summarize(h.holds)
		r.HoldP50, r.HoldMin, r.HoldMax = s.P50/1e6, float64(h.holds[0])/1e9, s.Max/1e6
	}
	return r
}
