package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"

	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/firewall"
)

// SelectEnforcer builds the firewall backend the configuration asks for.
// "auto" tries nftables, then ipset+iptables, and falls back to a log-only
// dry run, saying so loudly: a host that thinks it is protected and is not
// is the worst outcome. An explicitly named backend that fails is an error.
func SelectEnforcer(ctx context.Context, cfg *config.Config, log *slog.Logger) (Enforcer, string, error) {
	fw := cfg.Firewall
	nftCfg, ipsCfg := firewallConfigs(cfg, log)
	nft := func() (Enforcer, error) {
		e, err := firewall.NewNFTables(ctx, nftCfg)
		if err != nil && nftCfg.Trap != nil {
			// A kernel without NAT cannot redirect: ban without the trap
			// rather than not at all (newTrapper says so).
			noTrap := nftCfg
			noTrap.Trap = nil
			if e2, err2 := firewall.NewNFTables(ctx, noTrap); err2 == nil {
				log.Warn("trap: the nftables redirect cannot be installed", "err", err)
				return e2, nil
			}
		}
		return e, err
	}
	ips := func() (Enforcer, error) {
		return firewall.NewIPSet(ctx, ipsCfg)
	}
	switch fw.Backend {
	case "nftables":
		e, err := nft()
		return e, "nftables", err
	case "ipset":
		e, err := ips()
		return e, "ipset+iptables", err
	case "command":
		e, err := firewall.NewCommand(ctx, firewall.CommandConfig{Ban: fw.BanCommand, Unban: fw.UnbanCommand, Logger: log})
		return e, "command", err
	case "log":
		log.Warn("DRY RUN: firewall backend \"log\": bans are logged, not enforced")
		return firewall.NewLog(log), "log (dry run)", nil
	}
	// auto
	var why []error
	if os.Geteuid() != 0 {
		why = append(why, errors.New("not running as root"))
	} else {
		e, err := nft()
		if err == nil {
			return e, "nftables", nil
		}
		why = append(why, fmt.Errorf("nftables: %w", err))
		if _, lerr := exec.LookPath("ipset"); lerr == nil {
			e, err := ips()
			if err == nil {
				log.Warn("nftables unavailable; using ipset+iptables", "err", why[0])
				return e, "ipset+iptables", nil
			}
			why = append(why, fmt.Errorf("ipset: %w", err))
		} else {
			why = append(why, errors.New("ipset: not installed"))
		}
	}
	log.Warn("DRY RUN: no usable firewall, bans are only logged; run as root on a host with nftables or ipset to enforce them",
		"why", errors.Join(why...).Error())
	return firewall.NewLog(log), "log (dry run)", nil
}
