// Package allow holds the allowlist: addresses, prefixes and DNS names that
// must never be banned. Loopback (unless Options.NoLoopback) and the host's
// own addresses are always on it. DNS names (a home connection with a
// dynamic address) are re-resolved periodically; a failed lookup keeps the
// last known addresses.
package allow

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"
)

// Resolver looks up a name's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// List is the allowlist. It is safe for concurrent use.
type List struct {
	static   []netip.Prefix // configured addresses and prefixes, loopback, own addresses
	names    []string
	resolver Resolver
	log      *slog.Logger

	mu       sync.RWMutex
	resolved map[string][]netip.Prefix
	all      []netip.Prefix // static plus resolved, deduplicated, sorted

	// set holds all for Contains, which every event asks: one lookup
	// whatever the list's length, and no lock (rebuild swaps it whole).
	set atomic.Pointer[bart.Lite]
}

// Options tune New.
type Options struct {
	Resolver Resolver // nil: net.DefaultResolver
	Own      bool     // add the host's interface addresses
	// NoLoopback leaves out the loopback network (127.0.0.0/8, ::1), so that
	// other loopback addresses than the host's own (127.0.0.1, ::1, which
	// Own adds) can play attackers in tests of the whole system.
	NoLoopback bool
	Logger     *slog.Logger // nil discards
}

// New builds a list from configuration entries (addresses, CIDR prefixes or
// DNS names). Names are not resolved until Resolve or Run is called.
func New(entries []string, opt Options) (*List, error) {
	l := &List{resolver: opt.Resolver, log: opt.Logger, resolved: map[string][]netip.Prefix{}}
	if l.resolver == nil {
		l.resolver = net.DefaultResolver
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if !opt.NoLoopback {
		l.static = append(l.static, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	}
	if opt.Own {
		own, err := ownAddresses()
		if err != nil {
			return nil, fmt.Errorf("allowlist: host addresses: %w", err)
		}
		l.static = append(l.static, own...)
	}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if a, err := netip.ParseAddr(e); err == nil {
			l.static = append(l.static, hostPrefix(a))
			continue
		}
		if strings.Contains(e, "/") {
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("allowlist: %q is not a valid prefix", e)
			}
			l.static = append(l.static, p.Masked())
			continue
		}
		if e == "" || strings.ContainsAny(e, " :") {
			return nil, fmt.Errorf("allowlist: %q is neither an address, a prefix nor a DNS name", e)
		}
		l.names = append(l.names, e)
	}
	l.rebuild()
	return l, nil
}

func hostPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

// ownAddresses lists the addresses of this host's interfaces.
func ownAddresses() ([]netip.Prefix, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
			out = append(out, hostPrefix(ip.WithZone("")))
		}
	}
	return out, nil
}

// rebuild recomputes the merged list; callers hold mu (or own l exclusively).
func (l *List) rebuild() {
	all := slices.Clone(l.static)
	for _, ps := range l.resolved {
		all = append(all, ps...)
	}
	slices.SortFunc(all, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	l.all = slices.Compact(all)
	set := &bart.Lite{}
	for _, p := range l.all {
		set.Insert(p)
	}
	l.set.Store(set)
}

// Contains reports whether a is allowed. An address with an IPv6 zone
// never is, as netip.Prefix.Contains has it.
func (l *List) Contains(a netip.Addr) bool {
	if a.Zone() != "" {
		return false
	}
	return l.set.Load().Lookup(a.Unmap())
}

// Overlaps reports whether p contains an allowed address (or is contained
// in an allowed prefix): banning p would ban someone allowed.
func (l *List) Overlaps(p netip.Prefix) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, q := range l.all {
		if q.Overlaps(p) {
			return true
		}
	}
	return false
}

// Prefixes returns the whole list, for the firewall's allow set.
func (l *List) Prefixes() []netip.Prefix {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.all)
}

// Resolve looks up every DNS name once and reports whether the list
// changed. A name that fails to resolve keeps its previous addresses; the
// returned error joins the failures.
func (l *List) Resolve(ctx context.Context) (bool, error) {
	var errs []string
	fresh := map[string][]netip.Prefix{}
	for _, name := range l.names {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		addrs, err := l.resolver.LookupNetIP(lctx, "ip", name)
		cancel()
		if err != nil || len(addrs) == 0 {
			if err == nil {
				err = fmt.Errorf("no addresses")
			}
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		for _, a := range addrs {
			fresh[name] = append(fresh[name], hostPrefix(a))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := false
	for name, ps := range fresh {
		slices.SortFunc(ps, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
		if !slices.Equal(l.resolved[name], ps) {
			l.log.Info("allowlist name resolved", "name", name, "addrs", fmt.Sprint(ps))
			l.resolved[name] = ps
			changed = true
		}
	}
	if changed {
		l.rebuild()
	}
	if len(errs) > 0 {
		return changed, fmt.Errorf("allowlist: resolve %s", strings.Join(errs, "; "))
	}
	return changed, nil
}

// Run resolves the names now and then every interval until ctx ends,
// calling onChange with the new list whenever it changes. Lookup failures
// are logged, not fatal.
func (l *List) Run(ctx context.Context, every time.Duration, onChange func([]netip.Prefix)) error {
	if len(l.names) == 0 {
		return nil
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		changed, err := l.Resolve(ctx)
		if err != nil && ctx.Err() == nil {
			l.log.Warn("allowlist lookup failed; keeping the last known addresses", "err", err)
		}
		if changed && onChange != nil {
			onChange(l.Prefixes())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
