// Package trapstore keeps the trap's accounts, real user names and
// quarantined mail in Rampart's store. It is apart from package trap so
// that the trap's own imports can be checked for anything that connects
// out (see trap.TestNoDialling): the store is SQLite in a local file.
package trapstore

import (
	"context"
	"time"

	"github.com/rampart-dev/rampart/internal/store"
	"github.com/rampart-dev/rampart/internal/trap"
)

// Store adapts *store.Store to trap.AccountStore and trap.Keeper.
type Store struct{ *store.Store }

var (
	_ trap.AccountStore = Store{}
	_ trap.Keeper       = Store{}
)

// TrapAccounts returns the accounts last seen at or after since.
func (s Store) TrapAccounts(ctx context.Context, since time.Time) ([]trap.Account, error) {
	as, err := s.Store.TrapAccounts(ctx, since)
	out := make([]trap.Account, len(as))
	for i, a := range as {
		out[i] = trap.Account(a)
	}
	return out, err
}

// SaveTrapAccount creates or updates an account.
func (s Store) SaveTrapAccount(ctx context.Context, a trap.Account) error {
	return s.Store.SaveTrapAccount(ctx, store.TrapAccount(a))
}

// Quarantine keeps a message; the store places its client.
func (s Store) Quarantine(ctx context.Context, m trap.Message) (int64, error) {
	return s.Store.Quarantine(ctx, fromTrap(m))
}

// Message returns one quarantined message with its raw text.
func (s Store) Message(ctx context.Context, id int64) (trap.Message, error) {
	m, err := s.Store.QuarantineGet(ctx, id)
	return toTrap(m), err
}

// Messages returns up to limit quarantined messages, newest first, without
// their raw text.
func (s Store) Messages(ctx context.Context, limit int) ([]trap.Message, error) {
	ms, err := s.Store.QuarantineList(ctx, limit)
	out := make([]trap.Message, len(ms))
	for i, m := range ms {
		out[i] = toTrap(m)
	}
	return out, err
}

// fromTrap and toTrap convert between the trap's message and the
// store's, which also holds where the client is (the store's to fill).
// TestMessageFields keeps the two field lists the same.
func fromTrap(m trap.Message) store.Quarantined {
	return store.Quarantined{ID: m.ID, QueueID: m.QueueID, Received: m.Received, Client: m.Client, Port: m.Port, Helo: m.Helo,
		Account: m.Account, TLS: m.TLS, MailFrom: m.MailFrom, RcptTo: m.RcptTo, Size: m.Size, Truncated: m.Truncated, Raw: m.Raw}
}

func toTrap(m store.Quarantined) trap.Message {
	return trap.Message{ID: m.ID, QueueID: m.QueueID, Received: m.Received, Client: m.Client, Port: m.Port, Helo: m.Helo,
		Account: m.Account, TLS: m.TLS, MailFrom: m.MailFrom, RcptTo: m.RcptTo, Size: m.Size, Truncated: m.Truncated, Raw: m.Raw}
}
