package daemon

import (
	"log/slog"
	"syscall"

	"github.com/rampart-dev/rampart/internal/connlimit"
)

// Descriptors: every connection a peer opens (a Postfix smtpd, Dovecot's
// auth process, a syslog sender, or anyone who can reach those ports)
// costs the daemon a file descriptor. Without a bound, 20,000 idle
// connections took them all, and with them the log files it follows,
// reopens after rotation, the store and the control socket. So the
// daemon runs at its hard RLIMIT_NOFILE (Go raises the soft limit at
// start; raised here again in case), keeps a reserve of it for itself,
// and lets its listeners together hold the rest (connlimit.Budget).

// DescriptorStatus reports the descriptor budget in Status.
type DescriptorStatus struct {
	Limit   int `json:"limit"`   // RLIMIT_NOFILE
	Reserve int `json:"reserve"` // kept for logs, the store, the firewall, the control socket
	Peers   int `json:"peers"`   // what the listeners may hold together
	Used    int `json:"used"`    // what they hold now
}

// minReserve is the least the daemon keeps for itself: a few hundred log
// files, the store, netlink sockets, the control socket and its clients.
const minReserve = 256

// peerBudget raises the soft descriptor limit to the hard one and returns
// the budget for peers: the limit less an eighth of it, at least
// minReserve.
func peerBudget(log *slog.Logger) (*connlimit.Budget, DescriptorStatus) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Warn("cannot read the descriptor limit; assuming 1024", "err", err)
		rl.Cur, rl.Max = 1024, 1024
	}
	if rl.Cur < rl.Max {
		raised := rl
		raised.Cur = raised.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			rl = raised
		}
	}
	limit := int(min(rl.Cur, 1<<24))
	reserve := max(minReserve, limit/8)
	peers := limit - reserve
	if peers < limit/2 {
		// A low limit (1024: no LimitNOFILE, no raise): half for peers.
		peers, reserve = limit/2, limit-limit/2
	}
	ds := DescriptorStatus{Limit: limit, Reserve: reserve, Peers: peers}
	log.Info("descriptors", "limit", limit, "reserve", reserve, "peers", peers)
	return connlimit.NewBudget(peers), ds
}
