package daemon

// The daemon's side of the trap (issue 13, docs/trap.md): which decisions
// trap instead of ban, the accounts learned from the events it sees, the
// decoy servers and their listeners, pruning, status and the control
// socket's trap endpoints.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/postfixaudit"
	"github.com/rampart-dev/rampart/internal/store"
	"github.com/rampart-dev/rampart/internal/trap"
	"github.com/rampart-dev/rampart/internal/trap/trapstore"
)

// trapper traps: nil when the trap is off. Its methods are nil-safe.
type trapper struct {
	cfg       config.Trap
	jails     map[string]bool
	scenarios map[string]bool
	acc       *trap.Accounts
	srv       *trap.Server
	st        trapstore.Store
	log       *slog.Logger
	tls       bool // the decoys have a certificate
	// imapTLSOnly: Dovecot refuses logins in the clear before STARTTLS
	// (disable_plaintext_auth, auth_allow_cleartext in 2.4), and shows a
	// remote client LOGINDISABLED; the IMAP decoy does the same when it
	// can offer STARTTLS.
	imapTLSOnly bool
	// smtp is each SMTP listener's configuration by its port: its
	// protocol's, and what the real Postfix service on that port
	// announces and refuses (relaying, EHLO, limits, postmaster).
	smtp map[int]trap.ListenerConfig
}

// trapRedirect is the firewall's part of cfg's trap: each listener's
// dialled port to its listening port. nil when the trap is off.
func trapRedirect(cfg *config.Config) *firewall.TrapRedirect {
	if !cfg.Trap.Enabled {
		return nil
	}
	r := &firewall.TrapRedirect{Ports: map[uint16]uint16{}}
	for _, l := range cfg.Trap.Listeners {
		_, port, _ := strings.Cut(l.Listen[strings.LastIndexByte(l.Listen, ':'):], ":")
		p, _ := strconv.Atoi(port)
		r.Ports[uint16(l.Port)] = uint16(p)
	}
	return r
}

// newTrapper builds the trap for cfg, or returns nil when it is off. It
// returns nil with a warning when the firewall cannot redirect: the
// decisions then stay bans.
func newTrapper(ctx context.Context, cfg *config.Config, enf Enforcer, st *store.Store, log *slog.Logger) (*trapper, error) {
	tc := cfg.Trap
	if !tc.Enabled {
		return nil, nil
	}
	if n, ok := enf.(*firewall.NFTables); !ok || !n.Trapping() {
		log.Warn("trap: trapping is unavailable with this firewall (it needs nftables with NAT); mail attackers are banned as before")
		return nil, nil
	}
	passwords := trap.DefaultPasswords()
	if tc.PasswordsFile != "" {
		f, err := os.Open(tc.PasswordsFile)
		if err != nil {
			return nil, cfg.Errorf("trap.passwords_file", "trap: %v", err)
		}
		passwords, err = trap.ParsePasswords(f)
		f.Close()
		if err != nil {
			return nil, cfg.Errorf("trap.passwords_file", "trap: %s: %v", tc.PasswordsFile, err)
		}
	}
	pc := postconf(ctx, tc.PostfixConfig)
	hostname, banner := tc.Hostname, tc.Banner
	if hostname == "" {
		hostname = pc.Main["myhostname"]
	}
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	if banner == "" && tc.Hostname == "" {
		banner = pc.Main["smtpd_banner"]
	}
	certFile, keyFile := tc.CertFile, tc.KeyFile
	if certFile == "" {
		certFile, keyFile = pc.Main["smtpd_tls_cert_file"], pc.Main["smtpd_tls_key_file"]
	}
	var tlsConfig *tls.Config
	if certFile != "" && keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			if tc.CertFile != "" {
				return nil, cfg.Errorf("trap.cert_file", "trap: certificate: %v", err)
			}
			log.Warn("trap: Postfix's certificate cannot be read; the decoys offer no TLS", "cert_file", certFile, "err", err)
		} else {
			tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
	}
	t := &trapper{cfg: tc, jails: map[string]bool{}, scenarios: map[string]bool{}, st: trapstore.Store{Store: st}, log: log, tls: tlsConfig != nil,
		smtp: map[int]trap.ListenerConfig{}}
	// The Postfix service behind each SMTP listener's port (none without
	// Postfix, or when its master.cf is unread).
	services := map[int]*postfixaudit.Service{}
	for _, l := range tc.Listeners {
		if l.Protocol != "imap" && l.Protocol != "imaps" && postfixRead(pc) {
			services[l.Port] = pc.SMTPService(l.Port)
		}
	}
	mechs := dovecotMechs(ctx, pc, services)
	t.imapTLSOnly = t.tls && dovecotTLSOnly(ctx)
	for _, l := range tc.Listeners {
		if l.Protocol != "imap" && l.Protocol != "imaps" {
			t.smtp[l.Port] = SMTPTrapListener(pc, l.Protocol, l.Port, services[l.Port], mechs)
		}
	}
	for _, j := range tc.Jails {
		t.jails[j] = true
	}
	for _, s := range tc.Scenarios {
		t.scenarios[s] = true
	}
	t.acc = trap.NewAccounts(trap.AccountsConfig{
		Addresses: tc.AccountAddresses, Max: tc.MaxAccounts, TTL: tc.AccountTTL.D(),
		RealUsers: tc.RealUsers, Passwords: passwords, AnyAfter: tc.AnyPasswordAfter,
	}, t.st, log)
	if err := t.acc.Load(ctx); err != nil {
		return nil, fmt.Errorf("trap: %w", err)
	}
	t.srv = trap.NewServer(trap.Config{
		Hostname: hostname, Banner: banner, IMAPBanner: tc.IMAPBanner, TLS: tlsConfig,
		MaxMessageBytes: int64(tc.MaxMessageSize), KeepBytes: int64(tc.MaxMessageSize),
		MaxRecipients: tc.MaxRecipients, MaxMessages: tc.MaxMessages,
		MaxPerAddr: tc.MaxPerAddress, MaxSessions: tc.MaxSessions,
		QuarantineBytes: int64(tc.QuarantineSize), SessionTimeout: tc.SessionTimeout.D(),
		FailureDelay: cfg.Dovecot.AuthFailureDelay.D(),
		// What the real Postfix's version and settings change in its answers.
		Help:                   postfixAtLeast(pc.Main["mail_version"], 3, 9),
		ForbidUnauthPipelining: pc.Main["smtpd_forbid_unauth_pipelining"] == "yes",
		StrictEOD:              pc.Main["smtpd_forbid_bare_newline"] != "" && pc.Main["smtpd_forbid_bare_newline"] != "no",
		// Each listener has its service's own disable_vrfy_command.
	}, t.acc, t.st, log)
	if _, used, err := st.QuarantineUsage(ctx); err == nil {
		t.srv.SetUsage(used)
	}
	log.Info("trap: on", "accounts", t.acc.Count(), "hostname", hostname, "tls", tlsConfig != nil,
		"jails", strings.Join(tc.Jails, ","), "scenarios", strings.Join(tc.Scenarios, ","))
	return t, nil
}

// postfixAtLeast reports whether a mail_version is major.minor or later.
func postfixAtLeast(version string, major, minor int) bool {
	var ma, mi int
	if n, _ := fmt.Sscanf(version, "%d.%d", &ma, &mi); n != 2 {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// postconf reads the real Postfix's settings the decoys copy, or nothing
// when Postfix is not installed: main.cf's keys in one run (postconf -x
// KEY...; a key an older Postfix does not know is left out of its answer,
// it warns and goes on, the others kept), master.cf's services with their
// -o overrides in another (postconf -M -x), for the refusal of relaying
// on each port. $names come expanded.
func postconf(ctx context.Context, dir string) *postfixaudit.Config {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var base []string
	if dir != "" {
		base = []string{"-c", dir}
	}
	keys := append([]string{"myhostname", "smtpd_banner", "smtpd_tls_cert_file", "smtpd_tls_key_file",
		"mail_version", "smtpd_forbid_unauth_pipelining", "smtpd_forbid_bare_newline"},
		append(postfixaudit.RelayParams, postfixaudit.SmtpdParams...)...)
	none := &postfixaudit.Config{Main: map[string]string{}}
	out, err := postfixaudit.Postconf(ctx, append(append(base, "-x"), keys...)...)
	if err != nil {
		return none
	}
	master, err := postfixaudit.Postconf(ctx, append(base, "-M", "-x")...)
	if err != nil {
		master = nil // main.cf's settings still hold; no service is known
	}
	c, err := postfixaudit.Parse(string(out), string(master), "")
	if err != nil {
		return none
	}
	return c
}

// postfixRead reports whether postconf answered for main.cf and master.cf.
func postfixRead(pc *postfixaudit.Config) bool {
	return pc.Main["mail_version"] != "" && len(pc.Services) > 0
}

// SMTPTrapListener is an SMTP listener's configuration: its protocol's
// defaults (submission: AUTH once STARTTLS is done; submissions: TLS on
// connect and AUTH; smtp: no AUTH), and, where Postfix has a service s on
// its port, what that service announces in EHLO, its limits, its refusal
// of relaying and its answer to postmaster (postfixaudit's Smtpd,
// RelayDenied and Postmaster); mechs is what Dovecot offers on each auth
// socket. Whether TLS starts on connect stays the protocol's: that is
// what the redirected client dialled. (Exported for the comparison with a
// running Postfix in internal/trap.)
func SMTPTrapListener(pc *postfixaudit.Config, protocol string, port int, s *postfixaudit.Service, mechs map[string][]postfixaudit.DovecotMech) trap.ListenerConfig {
	c := trap.ListenerConfig{Port: uint16(port)}
	if postfixRead(pc) {
		c.RelayDenied = pc.RelayDenied(s) // "": not told, the decoy's own
	}
	switch protocol {
	case "submission":
		c.Auth, c.RequireTLS = true, true
	case "submissions":
		c.Auth, c.ImplicitTLS = true, true
	}
	if !postfixRead(pc) {
		return c
	}
	c.DisableVRFY = strings.EqualFold(strings.TrimSpace(pc.Main["disable_vrfy_command"]), "yes")
	if s == nil {
		return c // no service on the port: main.cf's refusal of relaying only
	}
	d := pc.Smtpd(s, mechs[pc.DovecotSocket(s)])
	c.Auth, c.RequireTLS, c.AuthTLSOnly, c.NoSTARTTLS = d.SASL, d.EnforceTLS && !c.ImplicitTLS, d.AuthTLSOnly, !d.StartTLS
	c.Mechanisms, c.TLSMechanisms, c.HiddenMechanisms, c.BrokenAuth = d.Mechanisms, d.TLSMechanisms, d.Hidden, d.BrokenAuth
	c.Discard, c.NoSMTPUTF8, c.DisableVRFY = d.Discard, !d.SMTPUTF8, d.DisableVRFY
	c.SizeLimit = d.SizeLimit
	if c.SizeLimit == 0 {
		c.SizeLimit = -1 // none: EHLO says SIZE alone
	}
	c.RecipientLimit, c.MaxPerAddr = d.RecipientLimit, d.ConnectionLimit
	if pm, ok := pc.Postmaster(s); ok {
		c.LocalDomains = pm.Domains
		c.PostmasterOK, c.PostmasterDenied = pm.Reply == "", pm.Reply
	}
	return c
}

// dovecotTLSOnly reports whether the real Dovecot refuses logins in the
// clear from remote clients: disable_plaintext_auth = yes (2.3, the
// default) or auth_allow_cleartext = no (2.4, the default). false without
// doveconf.
func dovecotTLSOnly(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if v, ok := postfixaudit.Doveconf(ctx, "disable_plaintext_auth"); ok {
		return v == "yes"
	}
	v, ok := postfixaudit.Doveconf(ctx, "auth_allow_cleartext")
	return ok && v == "no"
}

// dovecotMechs is what Dovecot's auth service offers each SMTP
// listener's Postfix service, by its socket: read from the socket as
// smtpd reads it, or else, when Dovecot is not running yet, from
// doveconf's auth_mechanisms (one run for all).
func dovecotMechs(ctx context.Context, pc *postfixaudit.Config, services map[int]*postfixaudit.Service) map[string][]postfixaudit.DovecotMech {
	out := map[string][]postfixaudit.DovecotMech{}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var fallback []postfixaudit.DovecotMech
	asked := false
	for _, s := range services {
		if s == nil {
			continue // no service on the port: its listener keeps the decoy's mechanisms
		}
		path := pc.DovecotSocket(s)
		if path == "" || out[path] != nil {
			continue
		}
		if m, err := postfixaudit.ReadDovecotAuth(ctx, path); err == nil {
			out[path] = m
			continue
		}
		if !asked {
			v, _ := postfixaudit.Doveconf(ctx, "auth_mechanisms")
			fallback, asked = postfixaudit.DovecotMechs(strings.Fields(v)), true
		}
		out[path] = fallback
	}
	return out
}

// convert turns a ban the trap takes over into a trap: an address ban of
// a trapping jail and scenario. With the trap off, a Trap (restored from
// the store) becomes a ban again.
func (t *trapper) convert(d event.Decision) event.Decision {
	switch {
	case t == nil:
		if d.Action == event.Trap {
			d.Action = event.Ban
		}
	case d.Action == event.Ban && d.Target.IsSingleIP() && t.jails[d.Jail] && t.scenarios[d.Scenario]:
		d.Action = event.Trap
	}
	return d
}

// observe feeds an event the daemon saw to the account learning.
func (t *trapper) observe(ev event.Event, n int) {
	if t == nil || n <= 0 {
		return
	}
	if ev.Kind == event.AuthSuccess || ev.Kind == event.UnknownUser && t.jails[ev.Jail] {
		t.acc.Observe(ev)
	}
}

// start opens the listeners and serves them until ctx ends; wg waits for
// them.
func (t *trapper) start(ctx context.Context, wg *sync.WaitGroup) error {
	if t == nil {
		return nil
	}
	var ls []net.Listener
	var lcs []config.TrapListener
	for _, lc := range t.cfg.Listeners {
		if (lc.Protocol == "submissions" || lc.Protocol == "imaps") && !t.tls {
			t.log.Warn("trap: no certificate, so no listener for TLS on connect", "port", lc.Port, "protocol", lc.Protocol)
			continue
		}
		lcs = append(lcs, lc)
		l, err := net.Listen("tcp", lc.Listen)
		if err != nil {
			for _, x := range ls {
				x.Close()
			}
			return fmt.Errorf("trap: listen %s for port %d: %w", lc.Listen, lc.Port, err)
		}
		ls = append(ls, l)
	}
	wg.Add(1)
	go func() { defer wg.Done(); t.acc.Run(ctx) }()
	for i, lc := range lcs {
		l := ls[i]
		c := t.smtp[lc.Port]
		imap := false
		switch lc.Protocol {
		case "imap":
			imap, c = true, trap.ListenerConfig{Port: uint16(lc.Port), RequireTLS: t.imapTLSOnly}
		case "imaps":
			imap, c = true, trap.ListenerConfig{Port: uint16(lc.Port), ImplicitTLS: true}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if imap {
				err = t.srv.ServeIMAP(l, c)
			} else {
				err = t.srv.Serve(l, c)
			}
			if err != nil && ctx.Err() == nil {
				t.log.Error("trap: listener stopped", "listen", lc.Listen, "err", err)
			}
		}()
		attrs := []any{"port", lc.Port, "listen", l.Addr().String(), "protocol", lc.Protocol}
		if c.RelayDenied != "" {
			attrs = append(attrs, "relay_denied", c.RelayDenied) // as Postfix's service on that port
		}
		if m := c.TLSMechanisms; c.Auth && !imap {
			if m == nil {
				m = c.Mechanisms
			}
			attrs = append(attrs, "auth", strings.Join(m, " ")) // "": the decoy's PLAIN LOGIN, Postfix's list unknown
		}
		t.log.Info("trap: listening", attrs...)
	}
	wg.Add(1)
	go func() { defer wg.Done(); <-ctx.Done(); t.srv.Close() }()
	return nil
}

// prune deletes quarantined mail past its retention and accounts past
// their lifetime.
func (t *trapper) prune(ctx context.Context, now time.Time) {
	if t == nil {
		return
	}
	if n, err := t.st.PruneQuarantine(ctx, now.Add(-t.cfg.Retention.D())); err != nil {
		t.log.Warn("trap: pruning the quarantine failed", "err", err)
	} else if n > 0 {
		t.log.Info("trap: quarantined messages past their retention deleted", "count", n)
	}
	if _, used, err := t.st.QuarantineUsage(ctx); err == nil {
		t.srv.SetUsage(used)
	}
	if _, err := t.st.PruneTrapAccounts(ctx, now.Add(-t.cfg.AccountTTL.D())); err != nil {
		t.log.Warn("trap: pruning accounts failed", "err", err)
	}
}

// TrapStatus is the trap's part of status.
type TrapStatus struct {
	Accounts     int    `json:"accounts"`
	Sessions     uint64 `json:"sessions"`
	Active       int64  `json:"active"`
	Refused      uint64 `json:"refused"`
	Logins       uint64 `json:"logins"`
	FailedLogins uint64 `json:"failed_logins"`
	Messages     uint64 `json:"messages"`
	Rejected     uint64 `json:"rejected"`
	CutOff       uint64 `json:"cut_off"`
}

func (t *trapper) status() *TrapStatus {
	if t == nil {
		return nil
	}
	s := t.srv.Stats()
	return &TrapStatus{
		Accounts: t.acc.Count(), Sessions: s.Sessions.Load(), Active: s.Active.Load(), Refused: s.Refused.Load(),
		Logins: s.Logins.Load(), FailedLogins: s.FailedLogins.Load(), Messages: s.Messages.Load(),
		Rejected: s.Rejected.Load(), CutOff: s.CutSize.Load(),
	}
}

// Control socket: the trap's accounts and quarantine, for `rampart trap`.
// They read the store, so they answer with the trap off too.

func (c *control) trapAccounts(w http.ResponseWriter, r *http.Request) {
	as, err := c.d.store.TrapAccounts(r.Context(), time.Time{})
	writeList(w, as, err)
}

func (c *control) trapMessages(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	ms, err := c.d.store.QuarantineList(r.Context(), limit)
	writeList(w, ms, err)
}

func (c *control) trapMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "message")
	if !ok {
		return
	}
	m, err := c.d.store.QuarantineGet(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no quarantined message %d", id)
	case err != nil:
		writeError(w, http.StatusInternalServerError, "%v", err)
	default:
		writeJSON(w, http.StatusOK, m)
	}
}

// TrapAccounts lists the trap accounts.
func (c *Client) TrapAccounts(ctx context.Context) ([]store.TrapAccount, error) {
	var as []store.TrapAccount
	err := c.call(ctx, http.MethodGet, "/v1/trap/accounts", nil, &as)
	return as, err
}

// TrapMessages lists up to limit quarantined messages (0: all), newest
// first, without their text.
func (c *Client) TrapMessages(ctx context.Context, limit int) ([]store.Quarantined, error) {
	var ms []store.Quarantined
	err := c.call(ctx, http.MethodGet, "/v1/trap/messages?limit="+strconv.Itoa(limit), nil, &ms)
	return ms, err
}

// TrapMessage returns one quarantined message with its raw text.
func (c *Client) TrapMessage(ctx context.Context, id int64) (store.Quarantined, error) {
	var m store.Quarantined
	err := c.call(ctx, http.MethodGet, "/v1/trap/messages/"+strconv.FormatInt(id, 10), nil, &m)
	return m, err
}

// asBans returns ds with their traps as the bans the engine decided.
func asBans(ds []event.Decision) []event.Decision {
	out := make([]event.Decision, len(ds))
	for i, d := range ds {
		if d.Action == event.Trap {
			d.Action = event.Ban
		}
		out[i] = d
	}
	return out
}
