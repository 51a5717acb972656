package daemon

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-dev/rampart/internal/connlimit"
	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/policy"
	"github.com/rampart-dev/rampart/internal/policy/dovecot"
	"github.com/rampart-dev/rampart/internal/policy/postfix"
)

// engineRef lets the live policy servers follow the engine across reloads.
// The failures they report are noted, so that their log lines do not count
// them again (see liveFailures).
type engineRef struct{ d *Daemon }

func (r engineRef) Assess(a netip.Addr, user string, t time.Time) engine.Assessment {
	return r.d.currentPipe().Engine.Assess(a, user, t)
}

func (r engineRef) Observe(ev event.Event) []event.Decision {
	if ev.Kind.Failure() {
		r.d.live.reported(ev.Jail, ev.Addr, time.Now())
	}
	r.d.insight.Observe(ev, 1)
	r.d.trap.observe(ev, 1)
	return r.d.currentPipe().Engine.Observe(ev)
}

// liveFailures keeps one failure from counting twice when a policy server
// reports it and the mail server also logs it in a file a jail follows:
// Dovecot reports every failed login to its policy server (IMAP, POP3, and
// SMTP AUTH that Postfix passes to Dovecot's SASL) and writes "auth failed"
// for the same login to its log. Counted twice, two typos would count four.
//
// The live report counts, as soon as it arrives (a log line comes later:
// Dovecot's login process writes one when the connection ends). Each
// report leaves a credit for its jail and address; a failed login read from
// that jail's log within creditWindow uses one up instead of counting. A
// login the policy server never heard of (Dovecot could not reach Rampart
// and failed open) leaves no credit, so its log line still counts.
type liveFailures struct {
	mu       sync.Mutex
	credits  map[liveKey]liveCredit
	absorbed atomic.Uint64
}

type liveKey struct {
	jail string
	addr netip.Addr
}

type liveCredit struct {
	n    int
	last time.Time
}

// creditWindow covers a login connection's lifetime: Dovecot logs the
// failure when the client disconnects, after its failure delays.
const creditWindow = 5 * time.Minute

// maxCredits bounds the table; past it, it starts afresh (a flood of
// addresses then counts some failures twice, never fewer than once).
const maxCredits = 100_000

func (lf *liveFailures) reported(jail string, a netip.Addr, now time.Time) {
	if !a.IsValid() {
		return
	}
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.credits == nil || len(lf.credits) >= maxCredits {
		lf.credits = map[liveKey]liveCredit{}
	}
	k := liveKey{jail, a}
	c := lf.credits[k]
	if now.Sub(c.last) > creditWindow {
		c.n = 0
	}
	c.n++
	c.last = now
	lf.credits[k] = c
}

// absorb reports whether a failed login read from a log was already counted
// from a live report, and uses up that report's credit.
func (lf *liveFailures) absorb(ev event.Event, now time.Time) bool {
	if ev.Kind != event.AuthFailure && ev.Kind != event.UnknownUser {
		return false
	}
	lf.mu.Lock()
	defer lf.mu.Unlock()
	k := liveKey{ev.Jail, ev.Addr}
	c, ok := lf.credits[k]
	if !ok {
		return false
	}
	if c.n <= 0 || now.Sub(c.last) > creditWindow {
		delete(lf.credits, k)
		return false
	}
	if c.n--; c.n == 0 {
		delete(lf.credits, k)
	} else {
		lf.credits[k] = c
	}
	lf.absorbed.Add(1)
	return true
}

// policies are the live policy servers that run.
type policies struct {
	postfix        *postfix.Server
	postfixHandler *postfix.JudgeHandler
	postfixConns   *connlimit.Limiter
	dovecot        *dovecot.Handler
	dovecotConns   *connlimit.Limiter
}

// dovecotMaxConns bounds the Dovecot policy server's connections: Dovecot's
// auth processes keep a few each.
const dovecotMaxConns = 1024

// PolicyStatus reports the live policy servers in Status.
type PolicyStatus struct {
	Postfix *postfix.Stats `json:"postfix,omitempty"`
	Dovecot *dovecot.Stats `json:"dovecot,omitempty"`
	// DovecotConns counts the Dovecot server's connections: open, and
	// refused for its cap or the descriptor budget.
	DovecotConns *connlimit.Stats `json:"dovecot_conns,omitempty"`
	// LogDuplicates counts failed logins read from a log that were not
	// counted again because a policy server had reported them.
	LogDuplicates uint64 `json:"log_duplicates"`
}

func (d *Daemon) judge(base, maxDelay time.Duration) *policy.Judge {
	return &policy.Judge{
		Engine:    engineRef{d},
		Tarpit:    policy.Tarpit{Base: base, Max: maxDelay},
		Decided:   d.apply.submit,
		KnownGood: d.apply.knownGood,
	}
}

// startPolicies starts the configured policy servers; they stop when ctx
// ends. Their listen addresses are read once: changing them needs a restart.
func (d *Daemon) startPolicies(ctx context.Context, wg *sync.WaitGroup) error {
	cfg := d.cfg
	if l := cfg.Postfix.Listen; l != "" {
		ln, err := listenPolicy(l)
		if err != nil {
			return fmt.Errorf("postfix policy server: %w", err)
		}
		lim := &connlimit.Limiter{Budget: d.peers}
		ln = lim.Listen(ln)
		// Over a unix socket only Postfix reaches (listenPolicy's
		// permissions), a request's sasl_username is a login Postfix saw.
		_, unix := strings.CutPrefix(l, "unix:")
		ph := &postfix.JudgeHandler{Judge: d.judge(cfg.Postfix.Base.D(), cfg.Postfix.Max.D()), Jail: cfg.Postfix.Jail, TrustSASL: unix}
		srv := &postfix.Server{
			Handler:  ph,
			Logger:   d.log.With("server", "postfix-policy"),
			MaxConns: cfg.Postfix.MaxConns,
		}
		if cfg.Postfix.FailClosed {
			srv.FailAction = postfix.Defer("Service temporarily unavailable")
		}
		d.mu.Lock()
		d.policy.postfix, d.policy.postfixHandler, d.policy.postfixConns = srv, ph, lim
		d.mu.Unlock()
		d.serveUntil(ctx, wg, "postfix policy server", func() error { return srv.Serve(ln) }, srv.Shutdown, postfix.ErrServerClosed)
		if path, ok := strings.CutPrefix(l, "unix:"); ok {
			wg.Add(1)
			go func() { defer wg.Done(); <-ctx.Done(); os.Remove(path) }()
		}
		d.log.Info("postfix policy server listening", "listen", l)
	}
	if l := cfg.Dovecot.Listen; l != "" {
		auth, authFrom, err := d.dovecotAuth(cfg.Dovecot.AuthFile, cfg.Daemon.StateDir)
		if err != nil {
			return err
		}
		h := &dovecot.Handler{Judge: d.judge(cfg.Dovecot.Base.D(), cfg.Dovecot.Max.D()), Jail: cfg.Dovecot.Jail, Auth: auth, FailureDelay: cfg.Dovecot.AuthFailureDelay.D(), Logger: d.log}
		ln, err := net.Listen("tcp", l)
		if err != nil {
			return fmt.Errorf("dovecot policy server: %w", err)
		}
		lim := &connlimit.Limiter{Max: dovecotMaxConns, Budget: d.peers}
		ln = lim.Listen(ln)
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
		d.mu.Lock()
		d.policy.dovecot, d.policy.dovecotConns = h, lim
		d.mu.Unlock()
		d.serveUntil(ctx, wg, "dovecot policy server", func() error { return srv.Serve(ln) }, srv.Shutdown, http.ErrServerClosed)
		d.log.Info("dovecot policy server listening", "listen", l, "auth_from", authFrom)
	}
	return nil
}

// serveUntil runs serve in the background and shuts it down, with a few
// seconds' grace, when ctx ends.
func (d *Daemon) serveUntil(ctx context.Context, wg *sync.WaitGroup, name string, serve func() error, shutdown func(context.Context) error, closed error) {
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := serve(); err != nil && !errors.Is(err, closed) {
			d.servers.Store(name, err) // health reports it
			d.log.Error(name+" stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		shutdown(sctx)
	}()
}

// listenPolicy opens "host:port" or "unix:/path". A unix socket is for
// Postfix alone: group postfix, mode 0660, in a directory the daemon
// creates group postfix, mode 0750, when it does not exist (Postfix's
// private/, owned by postfix, mode 0700, works as it is). No other local
// user can reach it, which is what lets a request's sasl_username count as
// a login. Without a postfix group the socket is refused rather than
// opened to everyone.
func listenPolicy(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	g, err := user.LookupGroup("postfix")
	if err != nil {
		return nil, fmt.Errorf("%s: no postfix group to give the socket to (is Postfix installed?); a socket any local user could reach would let them claim logins: %w", path, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return nil, fmt.Errorf("postfix group id %q: %w", g.Gid, err)
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, err
		}
		if err := os.Chown(dir, 0, gid); err != nil {
			return nil, err
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			return nil, err
		}
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chown(path, 0, gid); err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// dovecotSecretFile is where the daemon keeps the Dovecot shared secret it
// made, in the state directory.
const dovecotSecretFile = "dovecot-policy-auth"

// dovecotAuth returns the Authorization header value Dovecot must send, and
// where it came from: RAMPART_DOVECOT_AUTH, auth_file, or else a secret the
// daemon made in the state directory on its first start (mode 0600). The
// secret is never logged: the log names the file, and the Dovecot setting
// that reads it (auth_policy_server_api_header = </path), which keeps it
// out of Dovecot's world-readable configuration and out of `doveconf -n`.
func (d *Daemon) dovecotAuth(file, stateDir string) (value, from string, err error) {
	if v, from, err := configuredDovecotAuth(file); err != nil || from != "" {
		if err == nil && v == "" {
			err = fmt.Errorf("dovecot policy server: auth_file %s is empty", file)
		}
		return v, from, err
	}
	path := filepath.Join(stateDir, dovecotSecretFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil && headerValue(string(b)) != "":
		return headerValue(string(b)), path, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return "", "", fmt.Errorf("dovecot policy server: %w", err)
	}
	v, err := makeDovecotSecret(path)
	if err != nil {
		return "", "", fmt.Errorf("dovecot policy server: make the shared secret: %w", err)
	}
	d.log.Warn("dovecot policy server: made a shared secret; Dovecot must send it",
		"file", path, "dovecot_setting", "auth_policy_server_api_header = <"+path)
	return v, path, nil
}

// configuredDovecotAuth returns the secret the operator gave, from
// RAMPART_DOVECOT_AUTH or auth_file (empty if the file is), and where it
// came from; from is "" when they gave none (the daemon then makes one).
func configuredDovecotAuth(file string) (value, from string, err error) {
	if v := os.Getenv("RAMPART_DOVECOT_AUTH"); v != "" {
		return headerValue(v), "RAMPART_DOVECOT_AUTH", nil
	}
	if file == "" {
		return "", "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", "", fmt.Errorf("dovecot policy server: auth_file: %w", err)
	}
	return headerValue(string(b)), file, nil
}

// makeDovecotSecret writes a new secret to path, readable by root alone,
// as the header line Dovecot's auth_policy_server_api_header takes (with no
// newline: Dovecot reads a "<file" value as it is).
func makeDovecotSecret(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return "", err
	}
	v := "Basic " + base64.StdEncoding.EncodeToString(tok)
	tmp := path + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString("Authorization: " + v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return v, nil
}

// headerValue takes "Basic x", or a whole "Authorization: Basic x" line,
// and returns "Basic x".
func headerValue(s string) string {
	s = strings.TrimSpace(s)
	if name, v, ok := strings.Cut(s, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "authorization") {
		s = strings.TrimSpace(v)
	}
	return s
}

func (d *Daemon) policyStatus() *PolicyStatus {
	d.mu.Lock()
	p := d.policy
	d.mu.Unlock()
	if p.postfix == nil && p.dovecot == nil {
		return nil
	}
	ps := &PolicyStatus{LogDuplicates: d.live.absorbed.Load()}
	if p.postfix != nil {
		st := p.postfix.Stats()
		hs := p.postfixHandler.Stats()
		st.Rejected, st.Blinded = hs.Rejected, hs.Blinded
		st.Refused += p.postfixConns.Stats().RejectedFull
		ps.Postfix = &st
	}
	if p.dovecot != nil {
		st := p.dovecot.Stats()
		ps.Dovecot = &st
		cs := p.dovecotConns.Stats()
		ps.DovecotConns = &cs
	}
	return ps
}
