package store

// The trap's tables (migration 0003): trap accounts, real user names and
// quarantined mail.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// TrapAccount is a user name the trap lets attackers log in as.
type TrapAccount struct {
	User      string // folded: lower case, trimmed
	FirstSeen time.Time
	LastSeen  time.Time // last tried, in the logs or at the trap
	Addresses int       // distinct addresses that tried it when it was learnt
	Logins    int       // logins at the trap
	LastLogin time.Time // zero: never
}

// SaveTrapAccount creates the account or updates it: LastSeen and
// Addresses only grow, FirstSeen only shrinks; Logins and LastLogin are
// left as they are (see TrapLogin).
func (s *Store) SaveTrapAccount(ctx context.Context, a TrapAccount) error {
	if a.User == "" {
		return errors.New("save trap account: empty user")
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO trap_accounts (user, first_seen_ns, last_seen_ns, addresses)
			VALUES (?, ?, ?, ?)
			ON CONFLICT (user) DO UPDATE SET
				first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
				last_seen_ns = max(last_seen_ns, excluded.last_seen_ns),
				addresses = max(addresses, excluded.addresses)`,
			a.User, toNS(a.FirstSeen), toNS(a.LastSeen), a.Addresses)
		return err
	})
	if err != nil {
		return fmt.Errorf("save trap account %q: %w", a.User, err)
	}
	return nil
}

// TrapLogin counts a login at the trap as user at time at.
func (s *Store) TrapLogin(ctx context.Context, user string, at time.Time) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE trap_accounts SET logins = logins + 1,
			last_login_ns = max(last_login_ns, ?), last_seen_ns = max(last_seen_ns, ?) WHERE user = ?`,
			toNS(at), toNS(at), user)
		return err
	})
	if err != nil {
		return fmt.Errorf("count trap login %q: %w", user, err)
	}
	return nil
}

// TrapAccounts returns the accounts last seen at or after since, most
// recently seen first.
func (s *Store) TrapAccounts(ctx context.Context, since time.Time) ([]TrapAccount, error) {
	out, err := queryAll(ctx, s.r, func(row scanner) (TrapAccount, error) {
		var a TrapAccount
		var first, last, login int64
		err := row.Scan(&a.User, &first, &last, &a.Addresses, &a.Logins, &login)
		a.FirstSeen, a.LastSeen, a.LastLogin = fromNS(first), fromNS(last), fromNS(login)
		return a, err
	}, `SELECT user, first_seen_ns, last_seen_ns, addresses, logins, last_login_ns
		FROM trap_accounts WHERE last_seen_ns >= ? ORDER BY last_seen_ns DESC, user`, toNS(since))
	if err != nil {
		return nil, fmt.Errorf("list trap accounts: %w", err)
	}
	return out, nil
}

// DeleteTrapAccounts removes these accounts (a name found to be real);
// absent ones are not an error.
func (s *Store) DeleteTrapAccounts(ctx context.Context, users []string) error {
	if len(users) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, u := range users {
			if _, err := tx.ExecContext(ctx, `DELETE FROM trap_accounts WHERE user = ?`, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %d trap accounts: %w", len(users), err)
	}
	return nil
}

// PruneTrapAccounts removes the accounts last seen before before and
// returns how many.
func (s *Store) PruneTrapAccounts(ctx context.Context, before time.Time) (int, error) {
	n, err := s.deleteRows(ctx, `DELETE FROM trap_accounts WHERE last_seen_ns < ?`, toNS(before))
	if err != nil {
		return 0, fmt.Errorf("prune trap accounts: %w", err)
	}
	return n, nil
}

// AddRealUsers records user names (folded) that logged in successfully at
// time at: they are never trap accounts.
func (s *Store) AddRealUsers(ctx context.Context, users []string, at time.Time) error {
	if len(users) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, u := range users {
			if u == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO real_users (user, last_seen_ns) VALUES (?, ?)
				ON CONFLICT (user) DO UPDATE SET last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)`,
				u, toNS(at)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add %d real users: %w", len(users), err)
	}
	return nil
}

// RealUsers returns every user name recorded as real, sorted.
func (s *Store) RealUsers(ctx context.Context) ([]string, error) {
	out, err := queryAll(ctx, s.r, func(row scanner) (u string, err error) {
		return u, row.Scan(&u)
	}, `SELECT user FROM real_users ORDER BY user`)
	if err != nil {
		return nil, fmt.Errorf("list real users: %w", err)
	}
	return out, nil
}

// Quarantined is one message the trap accepted and kept.
type Quarantined struct {
	ID        int64
	QueueID   string // the id the client was told ("queued as ...")
	Received  time.Time
	Client    netip.Addr
	Port      int    // the port the client dialled (587, 465, 25)
	Helo      string // what the client said in EHLO/HELO
	Account   string // the trap account it logged in as; "" if none
	TLS       bool
	MailFrom  string
	RcptTo    []string
	Size      int64  // bytes the client sent
	Truncated bool   // Raw holds only the first part
	Raw       []byte // nil in listings
	// Place is where Client was when the message arrived: as m.Place, or
	// as the store's locator (WithLocator) said when it was kept.
	Place Place
}

// Quarantine stores a message and returns its ID. A message without a
// Place is placed by the store's locator, as decisions are.
func (s *Store) Quarantine(ctx context.Context, m Quarantined) (int64, error) {
	a, err := normAddr(m.Client)
	if err != nil {
		return 0, fmt.Errorf("quarantine: %w", err)
	}
	if m.Raw == nil {
		m.Raw = []byte{}
	}
	if m.Place == (Place{}) && s.locate != nil {
		m.Place = s.locate(a)
	}
	var id int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO quarantine (queue_id, received_ns, client, port, helo, account, tls,
			mail_from, rcpt_to, size, truncated, raw, country, asn, as_org) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.QueueID, toNS(m.Received), a.String(), m.Port, m.Helo, m.Account, m.TLS,
			m.MailFrom, strings.Join(m.RcptTo, "\n"), m.Size, m.Truncated, m.Raw, m.Place.Country, int64(m.Place.ASN), m.Place.Org)
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("quarantine message %s: %w", m.QueueID, err)
	}
	return id, nil
}

const quarantineCols = `id, queue_id, received_ns, client, port, helo, account, tls, mail_from, rcpt_to, size, truncated, country, asn, as_org`

func scanQuarantined(sc scanner, raw *[]byte) (Quarantined, error) {
	var m Quarantined
	var recv, asn int64
	var client, rcpt string
	dest := []any{&m.ID, &m.QueueID, &recv, &client, &m.Port, &m.Helo, &m.Account, &m.TLS, &m.MailFrom, &rcpt, &m.Size, &m.Truncated,
		&m.Place.Country, &asn, &m.Place.Org}
	if raw != nil {
		dest = append(dest, raw)
	}
	if err := sc.Scan(dest...); err != nil {
		return m, err
	}
	m.Received = fromNS(recv)
	m.Place.ASN = uint32(asn)
	var err error
	if m.Client, err = netip.ParseAddr(client); err != nil {
		return m, fmt.Errorf("bad client address %q: %w", client, err)
	}
	if rcpt != "" {
		m.RcptTo = strings.Split(rcpt, "\n")
	}
	return m, nil
}

// QuarantineList returns up to limit messages (0: all), newest first,
// without their raw text.
func (s *Store) QuarantineList(ctx context.Context, limit int) ([]Quarantined, error) {
	if limit <= 0 {
		limit = -1
	}
	out, err := queryAll(ctx, s.r, func(row scanner) (Quarantined, error) { return scanQuarantined(row, nil) },
		`SELECT `+quarantineCols+` FROM quarantine ORDER BY received_ns DESC, id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list quarantine: %w", err)
	}
	return out, nil
}

// ErrNotFound is returned when a quarantined message does not exist.
var ErrNotFound = errors.New("not found")

// QuarantineGet returns one message with its raw text.
func (s *Store) QuarantineGet(ctx context.Context, id int64) (Quarantined, error) {
	var raw []byte
	m, err := scanQuarantined(s.r.QueryRowContext(ctx, `SELECT `+quarantineCols+`, raw FROM quarantine WHERE id = ?`, id), &raw)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return m, fmt.Errorf("quarantined message %d: %w", id, ErrNotFound)
	case err != nil:
		return m, fmt.Errorf("quarantined message %d: %w", id, classify(err))
	}
	m.Raw = raw
	return m, nil
}

// QuarantineUsage returns how many messages the quarantine holds and the
// bytes of their raw text.
func (s *Store) QuarantineUsage(ctx context.Context) (count int, bytes int64, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(length(raw)), 0) FROM quarantine`).Scan(&count, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("quarantine usage: %w", classify(err))
	}
	return count, bytes, nil
}

// PruneQuarantine removes the messages received before before and returns
// how many.
func (s *Store) PruneQuarantine(ctx context.Context, before time.Time) (int, error) {
	n, err := s.deleteRows(ctx, `DELETE FROM quarantine WHERE received_ns < ?`, toNS(before))
	if err != nil {
		return 0, fmt.Errorf("prune quarantine: %w", err)
	}
	return n, nil
}
