package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
	"github.com/rampart-dev/rampart/internal/firewall"
	"github.com/rampart-dev/rampart/internal/store"
)

// FlushReason is the reason recorded in the history for bans that
// `rampart run --flush` ended.
const FlushReason = "ended by run --flush"

// firewallConfigs returns the nftables and ipset configurations for cfg:
// the one place that maps [firewall] onto the kernel backends, used by the
// daemon (SelectEnforcer) and by Flush, so both name the same table and sets.
func firewallConfigs(cfg *config.Config, log *slog.Logger) (firewall.NFTablesConfig, firewall.IPSetConfig) {
	fw := cfg.Firewall
	return firewall.NFTablesConfig{Table: fw.Table, Logger: log, Trap: trapRedirect(cfg)},
		firewall.IPSetConfig{Prefix: fw.Table + "-", Logger: log}
}

// FlushResult says what Flush removed.
type FlushResult struct {
	Table       string // the nftables table removed (family inet)
	IPSetPrefix string // the prefix of the ipsets removed
	Ended       int    // active bans ended in the store
}

// Flush removes everything Rampart installed in the firewall (see
// firewall.Uninstall) and ends the store's active bans, recorded in the
// history as ended by the flush (reason FlushReason), so the next start
// does not put them back. It refuses while a daemon answers on the control
// socket: that daemon would restore its bans at once. The kernel goes
// first; if the store cannot be updated the error says that the next start
// re-applies the bans.
func Flush(ctx context.Context, cfg *config.Config, log *slog.Logger) (FlushResult, error) {
	nft, ips := firewallConfigs(cfg, log)
	return flush(ctx, cfg, nft, ips)
}

func flush(ctx context.Context, cfg *config.Config, nft firewall.NFTablesConfig, ips firewall.IPSetConfig) (FlushResult, error) {
	res := FlushResult{Table: cfg.Firewall.Table, IPSetPrefix: ips.Prefix}
	if c, err := net.DialTimeout("unix", cfg.Daemon.Socket, time.Second); err == nil {
		c.Close()
		return res, fmt.Errorf("a rampart daemon is running (control socket %s): stop it first, or it restores its bans at once", cfg.Daemon.Socket)
	}
	if err := firewall.Uninstall(ctx, nft, ips); err != nil {
		return res, err
	}
	path := filepath.Join(cfg.Daemon.StateDir, "rampart.db")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return res, nil // no store: nothing to re-apply
	}
	fail := func(err error) error {
		return fmt.Errorf("firewall flushed, but the store %s could not record it (the next start re-applies its bans): %w", path, err)
	}
	st, err := store.Open(ctx, path)
	if err != nil {
		return res, fail(err)
	}
	defer st.Close()
	if res.Ended, err = st.RevokeAll(ctx, event.Ban, time.Now(), FlushReason); err != nil {
		return res, fail(err)
	}
	return res, nil
}
