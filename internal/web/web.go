// Package web serves the dashboard: server-rendered pages (overview,
// attackers, live decisions, the trap's quarantine with what each message
// carried, the abuse reports held for review, a ban and unban form) and a
// JSON API under /api/ with the data of every page.
//
// # Security
//
// The daemon runs as root, so the dashboard treats every request as
// hostile:
//
//   - it listens on loopback unless the configuration names another
//     address, and then only with a token (Options.Token, read from a file):
//     every page and API call then needs it, as a session cookie
//     set by the login form or as "Authorization: Bearer TOKEN";
//   - every state-changing request (POST) must come from the dashboard's
//     own origin (http.CrossOriginProtection, from the browser's
//     Sec-Fetch-Site and Origin headers) and carry the form's CSRF token,
//     or for the API a JSON body (which a cross-site form cannot send);
//   - pages are rendered by html/template, which escapes every value: a
//     user name, a mail header or a reason an attacker chose is text, never
//     markup; a quarantined message's body is never rendered at all;
//   - a strict Content-Security-Policy allows only the dashboard's own
//     scripts and styles (no inline script), and no framing.
package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/insight"
	"github.com/rampart-dev/rampart/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Backend is what the dashboard asks of the daemon.
type Backend interface {
	// Snapshot is the daemon's state now, at most ListedBans of its
	// bans in force listed (Snapshot.Active).
	Snapshot() Snapshot
	// Ban bans target (an address or CIDR prefix) for d (0: the default
	// ban time) and says what it did; an error is the user's to read.
	Ban(ctx context.Context, target string, d time.Duration, reason string) (string, error)
	// Unban lifts target's ban; it reports whether there was one.
	Unban(ctx context.Context, target string) (bool, error)
}

// Snapshot is the part of the daemon's status the dashboard shows.
type Snapshot struct {
	Version   string    `json:"version"`
	Started   time.Time `json:"started"`
	Firewall  string    `json:"firewall"`
	Events    uint64    `json:"events"`
	Decisions uint64    `json:"decisions"`
	Health    []Health  `json:"health"`
	Jails     []Jail    `json:"jails"`
	// Active lists the most recent bans in force (at most ListedBans);
	// ActiveTotal counts them all.
	Active      []Active `json:"active"`
	ActiveTotal int      `json:"active_total"`
}

// ListedBans is how many of the bans in force a page lists, the most
// recent: a flood makes hundreds of thousands.
const ListedBans = 200

// Health is one component's state.
type Health struct {
	Component string    `json:"component"`
	State     string    `json:"state"`
	Detail    string    `json:"detail,omitempty"`
	Since     time.Time `json:"since"`
}

// Jail is one jail's line.
type Jail struct {
	Name   string `json:"name"`
	Banned int    `json:"banned"`
}

// Active is a decision in force, with where its target is.
type Active struct {
	Target   string    `json:"ip"`
	Jail     string    `json:"jail,omitempty"`
	Scenario string    `json:"scenario"`
	Reason   string    `json:"reason"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"`
	Country  string    `json:"country,omitempty"`
	ASN      uint32    `json:"asn,omitempty"`
	Org      string    `json:"as_org,omitempty"`
}

// Options configure a Server.
type Options struct {
	Backend Backend
	Store   *store.Store
	Locator insight.Locator // may be nil
	// Reports is the daemon's abuse report queue, to approve and reject
	// reports held for review; nil when reporting is off (the queue is
	// then shown without its buttons).
	Reports ReportQueue
	// Token, when not empty, is required of every request (see the package
	// documentation). New refuses a non-loopback listener without one.
	Token  string
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
}

// Server is the dashboard.
type Server struct {
	opt    Options
	log    *slog.Logger
	secret []byte // signs CSRF tokens and sessions; new at every start
	pages  *pages
	// tables are the store's tables: the schema is brought up to date
	// when the store opens, so they are read once, not per request.
	tables  map[string]bool
	handler http.Handler
	now     func() time.Time
}

// New builds the dashboard's handler.
func New(opt Options) (*Server, error) {
	if opt.Backend == nil || opt.Store == nil {
		return nil, errors.New("web: a backend and a store are required")
	}
	s := &Server{opt: opt, log: opt.Logger, now: opt.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.secret = make([]byte, 32)
	if _, err := rand.Read(s.secret); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if s.tables, err = opt.Store.Tables(context.Background()); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.handler = s.routes()
	return s, nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheable(http.FileServerFS(static))))
	mux.HandleFunc("GET /{$}", s.page("overview", s.overview))
	mux.HandleFunc("GET /attackers", s.page("attackers", s.attackers))
	mux.HandleFunc("GET /decisions", s.page("decisions", s.decisions))
	mux.HandleFunc("GET /quarantine", s.page("quarantine", s.quarantine))
	mux.HandleFunc("GET /quarantine/{id}", s.page("message", s.message))
	mux.HandleFunc("GET /reports", s.page("reports", s.reports))
	mux.HandleFunc("GET /reports/{id}", s.page("report", s.report))
	mux.HandleFunc("POST /reports/review", s.form(s.reviewForm))
	mux.HandleFunc("GET /ban", s.page("ban", s.banPage))
	mux.HandleFunc("POST /ban", s.form(s.banForm))
	mux.HandleFunc("POST /unban", s.form(s.unbanForm))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("GET /api/overview", s.api(s.overview))
	mux.HandleFunc("GET /api/attackers", s.api(s.attackers))
	mux.HandleFunc("GET /api/decisions", s.api(s.decisions))
	mux.HandleFunc("GET /api/quarantine", s.api(s.quarantine))
	mux.HandleFunc("GET /api/quarantine/{id}", s.api(s.message))
	mux.HandleFunc("GET /api/reports", s.api(s.reports))
	mux.HandleFunc("GET /api/reports/{id}", s.api(s.report))
	mux.HandleFunc("POST /api/reports/review", s.reviewAPI)
	mux.HandleFunc("GET /api/ban", s.api(s.banPage))
	mux.HandleFunc("POST /api/ban", s.banAPI)
	mux.HandleFunc("POST /api/unban", s.unbanAPI)
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.Warn("web: cross-origin request refused", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	return s.headers(s.auth(cop.Handler(mux)))
}

// headers sets the security headers of every answer.
func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// cacheable lets the browser keep the embedded assets a while.
func cacheable(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		next.ServeHTTP(w, r)
	})
}

const sessionCookie = "rampart_session"

// auth requires the token, when there is one, of everything but the
// login form and the static assets (the dashboard's own code, no data).
func (s *Server) auth(next http.Handler) http.Handler {
	if s.opt.Token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" || strings.HasPrefix(r.URL.Path, "/static/") || s.authorized(r) {
			next.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/api/") || r.Method != http.MethodGet {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a token is required"})
			return
		}
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(v)), []byte(s.opt.Token)) == 1
	}
	c, err := r.Cookie(sessionCookie)
	return err == nil && hmac.Equal([]byte(c.Value), []byte(s.session()))
}

// session is the cookie value a login sets: it proves the token was
// given without holding it, and dies with the process.
func (s *Server) session() string { return s.sign("session\x00" + s.opt.Token) }

// csrf is the token every form carries.
func (s *Server) csrf() string { return s.sign("csrf") }

func (s *Server) sign(msg string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether a form carries the CSRF token.
func (s *Server) checkCSRF(r *http.Request) bool {
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.csrf()))
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "login", map[string]any{"Error": ""})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if !s.checkCSRF(r) {
		http.Error(w, "the form is stale: reload the page and try again", http.StatusForbidden)
		return
	}
	if s.opt.Token == "" || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(r.PostFormValue("token"))), []byte(s.opt.Token)) != 1 {
		s.log.Warn("web: login refused", "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusUnauthorized)
		s.render(w, r, "login", map[string]any{"Error": "That is not the token."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.session(), Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// Loopback reports whether a listen address ("127.0.0.1:8080",
// "[::1]:8080", "localhost:8080") stays on this host.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// Listener serves the dashboard on one address.
type Listener struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// Listen binds addr. A non-loopback address without a token is refused:
// the dashboard can ban and unban, and shows who attacks the host.
func (s *Server) Listen(addr string) (*Listener, error) {
	if !Loopback(addr) && s.opt.Token == "" {
		return nil, fmt.Errorf("web: %s is not a loopback address: set [web] token_file to serve the dashboard beyond this host", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return &Listener{ln: ln, log: s.log, srv: &http.Server{
		Handler: s.handler, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 32 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}}, nil
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Serve serves until ctx ends, then shuts the server down.
func (l *Listener) Serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		l.srv.Shutdown(sctx)
	}()
	l.log.Info("dashboard listening", "addr", "http://"+l.ln.Addr().String()+"/")
	if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("dashboard stopped", "err", err)
	}
}
