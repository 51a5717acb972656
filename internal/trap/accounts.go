// Package trap is Rampart's mail honeypot: decoy accounts learned from the
// user names attackers try, and the SMTP and IMAP faces that let a trapped
// attacker "log in" to them and "send" mail, which is kept in quarantine
// and never delivered, relayed or bounced.
//
// Nothing in this package opens an outbound connection: it only accepts
// them (see TestNoDialling, which checks its imports).
package trap

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/rampart-dev/rampart/internal/event"
)

// Account is a trap account: a user name that does not exist here and
// that attackers tried from several addresses.
type Account struct {
	User      string // folded: lower case, trimmed
	FirstSeen time.Time
	LastSeen  time.Time // last tried, in the logs or at the trap
	Addresses int       // distinct addresses that tried it when it was learnt
	Logins    int       // logins at the trap
	LastLogin time.Time // zero: never
}

// AccountStore keeps the accounts and the real user names
// (package trapstore puts them in Rampart's store).
type AccountStore interface {
	RealUsers(ctx context.Context) ([]string, error)
	AddRealUsers(ctx context.Context, users []string, at time.Time) error
	TrapAccounts(ctx context.Context, since time.Time) ([]Account, error)
	SaveTrapAccount(ctx context.Context, a Account) error
	TrapLogin(ctx context.Context, user string, at time.Time) error
	DeleteTrapAccounts(ctx context.Context, users []string) error
}

// AccountsConfig says how trap accounts are learned and what logs in.
type AccountsConfig struct {
	Addresses int           // distinct addresses that must try a name before it becomes an account
	Max       int           // accounts kept at most; more are not learned
	TTL       time.Duration // an account not tried for this long is forgotten
	RealUsers []string      // names that exist here (config), never accounts
	Passwords []string      // the passwords that "work"
	AnyAfter  int           // > 0: any password works after this many tries of one account from one address
}

// Accounts knows the trap accounts and the real user names. It learns
// from the daemon's events (Observe) and answers the faces' logins
// (Login). Store writes happen in Run, never on the caller's path.
type Accounts struct {
	cfg AccountsConfig
	st  AccountStore // nil: nothing persisted
	log *slog.Logger

	mu        sync.Mutex
	real      map[string]struct{}           // folded names and their local parts
	accounts  map[string]*Account           // by folded name
	pending   map[string]*candidate         // names tried, not yet accounts
	tries     map[tryKey]int                // failed trap logins by (address, account), for AnyAfter
	passwords map[string]struct{}           // the passwords that work
	templates []string                      // those with %u, the account's local part
	writes    []func(context.Context) error // store writes for Run
	wake      chan struct{}
	now       func() time.Time
}

// candidate is a name tried from fewer than Addresses addresses so far.
type candidate struct {
	addrs [8]netip.Addr
	n     int
	first time.Time
}

type tryKey struct {
	addr netip.Addr
	user string
}

// maxPending bounds the names tracked before they become accounts, and
// maxTries the (address, account) pairs counted for AnyAfter.
const (
	maxPending = 100_000
	maxTries   = 100_000
)

// NewAccounts returns Accounts; Load reads the stored ones. st may be nil.
func NewAccounts(cfg AccountsConfig, st AccountStore, log *slog.Logger) *Accounts {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Addresses = min(max(cfg.Addresses, 1), len(candidate{}.addrs))
	a := &Accounts{cfg: cfg, st: st, log: log, now: time.Now,
		real: map[string]struct{}{}, accounts: map[string]*Account{}, pending: map[string]*candidate{},
		tries: map[tryKey]int{}, passwords: map[string]struct{}{}, wake: make(chan struct{}, 1)}
	for _, p := range cfg.Passwords {
		if strings.Contains(p, "%u") {
			a.templates = append(a.templates, p)
			continue
		}
		a.passwords[p] = struct{}{}
	}
	for _, u := range cfg.RealUsers {
		a.addReal(Fold(u))
	}
	return a
}

// Fold is how the trap compares user names: trimmed, lower case.
func Fold(user string) string { return strings.ToLower(strings.TrimSpace(user)) }

// localPart returns the part of a folded name before its last '@'.
func localPart(u string) string {
	if i := strings.LastIndexByte(u, '@'); i >= 0 {
		return u[:i]
	}
	return u
}

// addReal records a real name; the caller holds mu or owns a. u is
// copied: a name read from a log line must not keep the line alive.
func (a *Accounts) addReal(u string) {
	if u == "" {
		return
	}
	u = strings.Clone(u)
	a.real[u] = struct{}{}
	a.real[localPart(u)] = struct{}{}
}

// isReal reports whether u may be a real account: it, or its local part,
// is a real name or a real name's local part. Conservative on purpose:
// "alice" is real when alice@example.org logged in.
func (a *Accounts) isReal(u string) bool {
	if _, ok := a.real[u]; ok {
		return true
	}
	_, ok := a.real[localPart(u)]
	return ok
}

// Load reads the real names and the accounts from the store, dropping
// accounts that turned out real or ran out their lifetime.
func (a *Accounts) Load(ctx context.Context) error {
	if a.st == nil {
		return nil
	}
	real, err := a.st.RealUsers(ctx)
	if err != nil {
		return err
	}
	accs, err := a.st.TrapAccounts(ctx, a.now().Add(-a.cfg.TTL))
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, u := range real {
		a.addReal(u)
	}
	var gone []string
	for i := range accs {
		acc := accs[i]
		if a.isReal(acc.User) {
			gone = append(gone, acc.User)
			continue
		}
		if len(a.accounts) < a.cfg.Max {
			a.accounts[acc.User] = &acc
		}
	}
	if len(gone) > 0 {
		a.log.Warn("trap: stored accounts are real user names; dropped", "count", len(gone))
		a.queue(func(ctx context.Context) error { return a.st.DeleteTrapAccounts(ctx, gone) })
	}
	return nil
}

// Observe learns from one event the daemon saw: a successful login makes
// its user name real (and ends a trap account of that name); an unknown
// user tried from enough addresses becomes a trap account. It never
// blocks on I/O.
func (a *Accounts) Observe(ev event.Event) {
	u := Fold(ev.User)
	if u == "" || len(u) > 256 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch ev.Kind {
	case event.AuthSuccess:
		if _, known := a.real[u]; known {
			return
		}
		a.addReal(u)
		delete(a.pending, u)
		var gone []string
		for name := range a.accounts {
			if a.isReal(name) {
				gone = append(gone, name)
				delete(a.accounts, name)
			}
		}
		at := ev.Time
		a.queue(func(ctx context.Context) error {
			if err := a.st.AddRealUsers(ctx, []string{u}, at); err != nil {
				return err
			}
			return a.st.DeleteTrapAccounts(ctx, gone)
		})
		if len(gone) > 0 {
			a.log.Info("trap: accounts ended, their names logged in for real", "users", strings.Join(gone, ","))
		}
	case event.UnknownUser:
		if !ev.Addr.IsValid() || a.isReal(u) {
			return
		}
		at := ev.Time
		if at.IsZero() {
			at = a.now()
		}
		if acc, ok := a.accounts[u]; ok {
			if at.Sub(acc.LastSeen) > time.Minute {
				acc.LastSeen = at
				saved := *acc
				a.queue(func(ctx context.Context) error { return a.st.SaveTrapAccount(ctx, saved) })
			}
			return
		}
		c, ok := a.pending[u]
		if !ok {
			if len(a.pending) >= maxPending {
				for k := range a.pending { // drop one: bounded, not ordered
					delete(a.pending, k)
					break
				}
			}
			c = &candidate{first: at}
			a.pending[strings.Clone(u)] = c // a copy: u is a piece of a log line
		}
		addr := ev.Addr.Unmap()
		for _, x := range c.addrs[:c.n] {
			if x == addr {
				return
			}
		}
		c.addrs[c.n] = addr
		c.n++
		if c.n < a.cfg.Addresses {
			return
		}
		delete(a.pending, u)
		if len(a.accounts) >= a.cfg.Max {
			return
		}
		u = strings.Clone(u)
		acc := &Account{User: u, FirstSeen: at, LastSeen: at, Addresses: c.n}
		a.accounts[u] = acc
		saved := *acc
		a.queue(func(ctx context.Context) error { return a.st.SaveTrapAccount(ctx, saved) })
		a.log.Info("trap: new trap account", "user", u, "addresses", c.n)
	}
}

// queue adds a store write for Run; the caller holds mu.
func (a *Accounts) queue(w func(context.Context) error) {
	if a.st == nil || len(a.writes) >= 10_000 {
		return
	}
	a.writes = append(a.writes, w)
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run writes what Observe and Login learned to the store until ctx ends,
// then writes what is left.
func (a *Accounts) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			a.flush(context.WithoutCancel(ctx))
			return
		case <-a.wake:
			a.flush(ctx)
		}
	}
}

func (a *Accounts) flush(ctx context.Context) {
	a.mu.Lock()
	ws := a.writes
	a.writes = nil
	a.mu.Unlock()
	for _, w := range ws {
		if err := w(ctx); err != nil {
			a.log.Warn("trap: store write failed", "err", err)
		}
	}
}

// Login reports whether user may log in to the trap with pass from addr,
// and the account it logs in as: a trap account with one of the
// passwords, or any password after AnyAfter tries from that address.
// Real names never log in to the trap.
func (a *Accounts) Login(user, pass string, from netip.Addr) (account string, ok bool) {
	u := Fold(user)
	a.mu.Lock()
	defer a.mu.Unlock()
	acc, isAcc := a.accounts[u]
	if !isAcc || a.isReal(u) {
		return "", false
	}
	now := a.now()
	if a.cfg.TTL > 0 && now.Sub(acc.LastSeen) > a.cfg.TTL {
		delete(a.accounts, u)
		return "", false
	}
	_, good := a.passwords[pass]
	for _, t := range a.templates {
		good = good || strings.ReplaceAll(t, "%u", localPart(u)) == pass
	}
	k := tryKey{addr: from.Unmap(), user: u}
	if !good && a.cfg.AnyAfter > 0 {
		good = a.tries[k] >= a.cfg.AnyAfter
	}
	if !good {
		if len(a.tries) >= maxTries {
			clear(a.tries)
		}
		a.tries[k]++
		return "", false
	}
	delete(a.tries, k)
	acc.Logins++
	acc.LastLogin, acc.LastSeen = now, now
	a.queue(func(ctx context.Context) error { return a.st.TrapLogin(ctx, u, now) })
	return u, true
}

// Count returns how many trap accounts there are.
func (a *Accounts) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.accounts)
}

// List returns the trap accounts, as the trap knows them now.
func (a *Accounts) List() []Account {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Account, 0, len(a.accounts))
	for _, acc := range a.accounts {
		out = append(out, *acc)
	}
	return out
}
