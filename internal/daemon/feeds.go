package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/feed"
)

// feeds is [feed]: this node's signed feed, served over HTTPS, and the
// subscriptions to other owners' feeds. A subscription's bans go in
// through peerBan (so the allowlist and known-good clients win), or only
// tighten thresholds (trust "suspect"). Nil when [feed] sets nothing.
type feeds struct {
	d    *Daemon
	cfg  config.Feed
	name string
	key  ed25519.PrivateKey
	cert tls.Certificate
	subs []*subscription
	l    net.Listener // the feed's, opened by listen
	log  *slog.Logger

	hotMu sync.Mutex
	hot   map[string]time.Time // user names sprayed here lately, for this node's feed
}

// subscription is one feed this node reads.
type subscription struct {
	cfg    config.FeedSubscription
	pub    ed25519.PublicKey
	client *http.Client
	ban    bool
	every  time.Duration
	maxAge time.Duration
	max    int64

	mu     sync.Mutex
	held   map[netip.Prefix]bool // targets of its last good fetch
	status FeedSubscriptionStatus
}

// FeedSubscriptionStatus is a subscription as status shows it.
type FeedSubscriptionStatus struct {
	Name      string    `json:"name"`
	Trust     string    `json:"trust"`
	Fetched   time.Time `json:"fetched,omitzero"` // the last good fetch
	Entries   int       `json:"entries"`          // in it
	Applied   uint64    `json:"applied"`          // bans enforced (trust ban)
	Suspects  uint64    `json:"suspects"`         // targets and names flagged (trust suspect)
	Refused   uint64    `json:"refused"`          // allowlisted, never-ban or known-good here
	Malformed uint64    `json:"malformed"`        // entries dropped
	Rejected  uint64    `json:"rejected"`         // feeds refused (signature, age, size)
	LastError string    `json:"last_error,omitempty"`
}

// newFeeds reads [feed]'s keys and certificates; nil when it is unused.
func newFeeds(d *Daemon, cfg *config.Config) (*feeds, error) {
	fc := cfg.Feed
	if fc.Listen == "" && len(fc.Subscribe) == 0 {
		return nil, nil
	}
	f := &feeds{d: d, cfg: fc, name: fc.Name, log: d.log.With("component", "feed"), hot: map[string]time.Time{}}
	if f.name == "" {
		f.name, _ = os.Hostname()
	}
	if fc.Listen != "" {
		b, err := os.ReadFile(fc.SigningKeyFile)
		if err != nil {
			return nil, cfg.Errorf("feed.signing_key_file", "%v", err)
		}
		if f.key, err = feed.ParseKey(b); err != nil {
			return nil, cfg.Errorf("feed.signing_key_file", "%s: %v", fc.SigningKeyFile, err)
		}
		if f.cert, err = tls.LoadX509KeyPair(fc.CertFile, fc.KeyFile); err != nil {
			return nil, cfg.Errorf("feed.cert_file", "%v", err)
		}
	}
	for _, s := range fc.Subscribe {
		pub, err := feed.ParsePublicKey(s.PublicKey)
		if err != nil {
			return nil, cfg.Errorf("feed.subscribe", "subscription %q: %v", s.Name, err)
		}
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.CAFile != "" {
			pem, err := os.ReadFile(s.CAFile)
			if err != nil {
				return nil, cfg.Errorf("feed.subscribe", "subscription %q: %v", s.Name, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, cfg.Errorf("feed.subscribe", "subscription %q: no certificate in %s", s.Name, s.CAFile)
			}
		}
		sub := &subscription{cfg: s, pub: pub, ban: s.Trust == "ban", every: s.Every.D(), maxAge: s.MaxAge.D(), max: int64(s.MaxBytes), held: map[netip.Prefix]bool{},
			client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}}}
		if sub.every <= 0 {
			sub.every = 5 * time.Minute
		}
		if sub.maxAge <= 0 {
			sub.maxAge = time.Hour
		}
		if sub.max <= 0 {
			sub.max = 16 << 20
		}
		sub.status = FeedSubscriptionStatus{Name: s.Name, Trust: map[bool]string{true: "ban", false: "suspect"}[sub.ban]}
		f.subs = append(f.subs, sub)
	}
	return f, nil
}

// listen opens the feed's listener, if any.
func (f *feeds) listen() error {
	if f == nil || f.cfg.Listen == "" {
		return nil
	}
	l, err := net.Listen("tcp", f.cfg.Listen)
	if err != nil {
		return f.d.cfg.Errorf("feed.listen", "%v", err)
	}
	f.l = l
	return nil
}

// run serves this node's feed and reads the subscriptions until ctx ends.
func (f *feeds) run(ctx context.Context) {
	if f == nil {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if f.l != nil {
		srv := &http.Server{Handler: feed.Handler(f.document, f.key), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
			TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{f.cert}}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ServeTLS(f.l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				f.log.Error("feed: serving failed", "err", err)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		}()
	}
	for _, s := range f.subs {
		wg.Add(1)
		go func() { defer wg.Done(); f.follow(ctx, s) }()
	}
}

// document is this node's feed now: its own bans in force, and the user
// names it saw sprayed lately.
func (f *feeds) document() feed.Document {
	now := time.Now()
	doc := feed.Document{Publisher: f.name, Generated: now, Expires: now.Add(f.cfg.Validity.D()), Entries: []feed.Entry{}}
	for _, d := range f.d.currentPipe().Engine.Active(now) {
		if d.Origin == "local" && (d.Action == event.Ban || d.Action == event.Trap) {
			doc.Entries = append(doc.Entries, feed.Entry{Target: d.Target.String(), End: d.End(), Scenario: d.Scenario})
		}
	}
	f.hotMu.Lock()
	for u, end := range f.hot {
		if end.After(now) {
			doc.HotUsers = append(doc.HotUsers, feed.HotUser{User: u, End: end})
		} else {
			delete(f.hot, u)
		}
	}
	f.hotMu.Unlock()
	return doc
}

// observed remembers a user name found sprayed: the event ev led to ds.
func (f *feeds) observed(ev event.Event, ds []event.Decision) {
	if f == nil || f.cfg.Listen == "" || ev.User == "" {
		return
	}
	for _, d := range ds {
		if d.Scenario == "user-spray" && d.Origin == "local" {
			f.hotMu.Lock()
			if len(f.hot) < 1000 {
				f.hot[strings.Clone(trimTo(ev.User, 64))] = time.Now().Add(time.Hour) // a copy: not a piece of the line
			}
			f.hotMu.Unlock()
			return
		}
	}
}

func trimTo(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// follow fetches s every s.every until ctx ends.
func (f *feeds) follow(ctx context.Context, s *subscription) {
	for {
		f.fetch(ctx, s)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.every):
		}
	}
}

// fetch reads s once and applies it: its entries as bans (trust ban) or
// marks (suspect), and the lifting of this feed's bans it no longer lists.
func (f *feeds) fetch(ctx context.Context, s *subscription) {
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := time.Now()
	data, err := feed.Fetch(fctx, s.client, s.cfg.URL, s.max)
	var doc feed.Document
	bad := 0
	if err == nil {
		doc, bad, err = feed.Verify(data, s.pub, now, s.maxAge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if errors.Is(err, feed.ErrRejected) {
			s.status.Rejected++
		}
		s.status.LastError = err.Error()
		f.log.Warn("feed: not taken", "feed", s.cfg.Name, "err", err)
		return
	}
	origin := "feed:" + s.cfg.Name
	e := f.d.currentPipe().Engine
	held := make(map[netip.Prefix]bool, len(doc.Entries))
	for _, en := range doc.Entries {
		p, _ := en.Prefix()
		held[p] = true
		until := en.End
		if until.IsZero() {
			until = now.Add(s.every + s.maxAge)
		}
		if !s.ban {
			if e.MarkSuspect(p, until, origin) {
				s.status.Suspects++
			}
			continue
		}
		dec := event.Decision{Target: p, Action: event.Ban, Start: now, Scenario: en.Scenario, Reason: "listed in " + origin, Origin: origin}
		if !en.End.IsZero() {
			dec.Duration = en.End.Sub(now)
		}
		switch f.d.peerBan(dec) {
		case peerApplied:
			s.status.Applied++
		case peerAllowed, peerGood:
			s.status.Refused++
		}
	}
	for _, u := range doc.HotUsers {
		if e.MarkHotUser(u.User, u.End, origin) {
			s.status.Suspects++
		}
	}
	if s.ban {
		for p := range s.held {
			if held[p] {
				continue
			}
			if _, err := f.d.peerUnban(ctx, p, origin, "no longer in "+origin); err != nil {
				f.log.Warn("feed: lifting a ban failed", "feed", s.cfg.Name, "addr", Target(p), "err", err)
			}
		}
	}
	s.held = held
	s.status.Fetched, s.status.Entries, s.status.LastError = now, len(doc.Entries), ""
	s.status.Malformed += uint64(bad)
}

func (f *feeds) status() []FeedSubscriptionStatus {
	if f == nil {
		return nil
	}
	var out []FeedSubscriptionStatus
	for _, s := range f.subs {
		s.mu.Lock()
		out = append(out, s.status)
		s.mu.Unlock()
	}
	return out
}
