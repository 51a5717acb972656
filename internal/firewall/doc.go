// Package firewall holds Rampart's enforcers: the backends that apply the
// engine's Decisions to the system.
//
//   - NFTables: nftables over netlink, Rampart's own table, kernel timeouts.
//   - IPSet: ipset sets and iptables/ip6tables rules, for hosts without nftables.
//   - Command: user command templates, fail2ban style.
//   - Log: a dry run that only logs and remembers.
//
// Each backend has the same five methods, which the daemon declares as its
// Enforcer interface:
//
//	Apply(ctx, []event.Decision) error       // ban each Target for its Duration
//	Revoke(ctx, []netip.Prefix) error        // remove; absent targets are fine
//	Active(ctx) ([]event.Decision, error)    // what is in force now, time left
//	SetAllow(ctx, []netip.Prefix) error      // replace the allowlist atomically
//	Close() error
//
// Shared semantics, stated once here and repeated where a backend differs:
//
//   - Targets are normalized: an IPv4-mapped IPv6 prefix is unmapped
//     (::ffff:192.0.2.1/128 is 192.0.2.1/32), host bits are cleared. A /32 or
//     /128 is an address ban; anything wider is a prefix ban.
//   - Apply enforces only Action Ban and skips other actions; an invalid
//     target or a /0 fails the call before anything changes. Duration 0 means
//     no timeout. A Decision with a non-zero Start lasts until Start+Duration,
//     so decisions re-applied from the store keep their end; one already past
//     it is skipped. Re-applying a banned target replaces its timeout.
//   - Active reports Start as the current time and Duration as the time left
//     (zero: no timeout); only Target, Action, Start and Duration are set,
//     except where a backend says it remembers more.
//   - The allowlist wins over bans in the kernel backends: an allowed address
//     inside a banned prefix still gets through.
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
