package daemon

import (
	"context"
	"time"

	"github.com/rampart-dev/rampart/internal/firewall"
)

// The kernel keeps holding what the store says. Another program can remove
// Rampart's table or sets at any moment (`nft flush ruleset`, a firewall
// manager's reload, an iptables-restore); until something puts them back,
// nothing is enforced. The kernel backends remember what they were told
// (every ban the applier applied from the store or the engine, the
// allowlist, the carve-outs) and Reconcile puts back what the kernel lost.
// keepFirewall runs it: at once when the nftables backend's Watch reports a
// change to Rampart's table, and every reconcileEvery in any case.

// reconcileEvery is how often the kernel is checked without a report. A
// check with nothing to do costs microseconds with nftables (one netlink
// request) and five short processes with ipset.
const reconcileEvery = 5 * time.Second

// Keeper is an enforcer that can put back what the kernel lost (see
// firewall.NFTables.Reconcile).
type Keeper interface {
	Reconcile(ctx context.Context) (firewall.Repair, error)
}

// Watcher is an enforcer that reports changes worth a Reconcile (see
// firewall.NFTables.Watch).
type Watcher interface {
	Watch(ctx context.Context, changed func()) error
}

// firewallStats is an enforcer that counts carve-outs and repairs.
type firewallStats interface {
	Stats() firewall.Stats
}

// keepFirewall reconciles the kernel with the firewall's intent until ctx
// ends, and refreshes the carve-outs that are due.
func (d *Daemon) keepFirewall(ctx context.Context) {
	every := d.opt.ReconcileEvery
	if every <= 0 {
		every = reconcileEvery
	}
	k, _ := d.enf.(Keeper)
	wake := make(chan struct{}, 1)
	watched := make(chan struct{})
	if w, ok := d.enf.(Watcher); ok && k != nil {
		go func() {
			defer close(watched)
			for {
				err := w.Watch(ctx, func() { signal(wake) })
				if ctx.Err() != nil {
					return
				}
				d.log.Warn("firewall: watching the ruleset failed; checking every few seconds until it works again", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(every):
				}
			}
		}()
	} else {
		close(watched)
	}
	defer func() { <-watched }()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			d.apply.sweepCarves()
		case <-wake:
		}
		if k == nil {
			continue
		}
		d.checks.Add(1)
		_, err := k.Reconcile(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil && d.shields != nil {
			// After the enforcer's: the shields use its table and sets.
			_, err = d.shields.Reconcile(ctx)
			err = wrapErr("shields", err)
		}
		d.enfErr.note(wrapErr("putting back what the kernel lost", err))
	}
}
