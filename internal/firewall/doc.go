// Package firewall holds Rampart's enforcers: the backends that apply the
// engine's Decisions to the system.
//
//   - NFTables: nftables over netlink, Rampart's own table, kernel timeouts.
//   - IPSet: ipset sets and iptables/ip6tables rules, for hosts without nftables.
//   - Command: user command templates, fail2ban style.
//   - Log: a dry run that only logs and remembers.
//
// Each backend has the same methods. The daemon declares the first five as
// its Enforcer interface and the carve-out ones as its Carver:
//
//	Apply(ctx, []event.Decision) error       // ban each Target for its Duration
//	Revoke(ctx, []netip.Prefix) error        // remove; absent targets are fine
//	Active(ctx) ([]event.Decision, error)    // what is in force now, time left
//	SetAllow(ctx, []netip.Prefix) error      // replace the allowlist atomically
//	Close() error
//
//	Carve(ctx, []CarveOut) error             // let addresses through prefix bans until a time
//	Uncarve(ctx, []netip.Addr) error         // end carve-outs; absent ones are fine
//	CarveOuts(ctx) ([]CarveOut, error)       // the carve-outs in force, for reconciliation
//	Stats() Stats                            // carve-outs counted, repairs; no kernel access
//
// The kernel backends (NFTables, IPSet) also have Reconcile(ctx) (Repair,
// error), which puts back what the kernel lost (a flushed ruleset, a
// deleted set or rule, removed elements); NFTables has Watch(ctx, func()),
// which reports every committed transaction so that Reconcile can run at
// once.
//
// Shared semantics, stated once here and repeated where a backend differs:
//
//   - Targets are normalized: an IPv4-mapped IPv6 prefix is unmapped
//     (::ffff:192.0.2.1/128 is 192.0.2.1/32), host bits are cleared. A /32 or
//     /128 is an address ban; anything wider is a prefix ban.
//   - Apply enforces Action Ban and skips other actions, except that
//     NFTables configured with a TrapRedirect also enforces Action Trap on
//     single addresses (see nftables_trap.go; Revoke lifts traps too, and
//     Active reports them with Action Trap); an invalid
//     target or a /0 fails the call before anything changes. Duration 0 means
//     no timeout. A Decision with a non-zero Start lasts until Start+Duration,
//     so decisions re-applied from the store keep their end; one already past
//     it is skipped. Re-applying a banned target replaces its timeout.
//   - Active reports Start as the current time and Duration as the time left
//     (zero: no timeout); only Target, Action, Start and Duration are set,
//     except where a backend says it remembers more.
//   - The kernel backends evaluate, in this order: the allowlist (accept),
//     address bans (drop), carve-outs (accept), prefix bans (drop). So the
//     allowlist wins over every ban; a carved-out address inside a banned
//     prefix gets through, but one banned as an address does not.
//   - Carve adds or refreshes carve-outs: each address (normalized like a
//     target; an invalid one fails the call before anything changes) passes
//     prefix bans until its Until, the kernel timing it out; a zero Until
//     means until Uncarve; an entry already past its Until is skipped;
//     re-carving sets the new Until. Command cannot carve and says how it
//     copes instead.
//   - A kernel backend remembers what it was told (bans applied and not
//     revoked, carve-outs, allowlist) as its intent, including a batch the
//     kernel refused; Reconcile makes the kernel hold the intent again and
//     leaves alone whatever else the kernel holds.
//   - After Close every method returns ErrClosed; kernel state stays, and bans
//     expire by themselves. Uninstall removes what Rampart installed.
package firewall

import (
	"context"
	"errors"
	"log/slog"
)

// ErrClosed is returned by an enforcer's methods after Close.
var ErrClosed = errors.New("enforcer closed")

func loggerOrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Uninstall removes everything Rampart installed in the kernel through the
// NFTables and IPSet backends with these configurations, and nothing else:
// the nftables table, and the iptables chain, its jump rules and the ipsets
// (see UninstallNFTables and UninstallIPSet). Errors of both are joined.
func Uninstall(ctx context.Context, nft NFTablesConfig, ips IPSetConfig) error {
	return errors.Join(UninstallNFTables(nft), UninstallIPSet(ctx, ips))
}
