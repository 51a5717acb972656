package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// Positions of log sources.

const upsertPositionSQL = `INSERT INTO positions (origin, pos, updated_ns) VALUES (?, ?, ?)
	ON CONFLICT (origin) DO UPDATE SET pos = excluded.pos, updated_ns = excluded.updated_ns`

// SavePosition stores pos, an opaque resume point (a file follower's encoded
// dev/inode/offset/hash, a journald cursor), for the source origin,
// replacing the previous one.
func (s *Store) SavePosition(ctx context.Context, origin, pos string) error {
	return s.SavePositions(ctx, map[string]string{origin: pos})
}

// SavePositions stores many positions in one transaction, for the periodic
// batched flush: all are saved or, on error, none.
func (s *Store) SavePositions(ctx context.Context, positions map[string]string) error {
	if len(positions) == 0 {
		return nil
	}
	err := s.write(ctx, func(tx *sql.Tx) error { return savePositions(ctx, tx, positions) })
	if err != nil {
		if len(positions) == 1 {
			for o := range positions {
				return fmt.Errorf("save position of %s: %w", o, err)
			}
		}
		return fmt.Errorf("save %d positions: %w", len(positions), err)
	}
	return nil
}

// savePositions writes positions in tx.
func savePositions(ctx context.Context, tx *sql.Tx, positions map[string]string) error {
	if len(positions) == 0 {
		return nil
	}
	// A stable order keeps the write deterministic for tests and debugging.
	origins := make([]string, 0, len(positions))
	for o := range positions {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	now := toNS(time.Now())
	st, err := tx.PrepareContext(ctx, upsertPositionSQL)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, o := range origins {
		if _, err := st.ExecContext(ctx, o, positions[o], now); err != nil {
			return err
		}
	}
	return nil
}

// LoadPosition returns the position saved for origin; ok is false when there
// is none (read the source from its start, or its end, as it decides).
func (s *Store) LoadPosition(ctx context.Context, origin string) (pos string, ok bool, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT pos FROM positions WHERE origin = ?`, origin).Scan(&pos)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("load position of %s: %w", origin, classify(err))
	}
	return pos, true, nil
}

// Positions returns every saved position by origin.
func (s *Store) Positions(ctx context.Context) (map[string]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT origin, pos FROM positions`)
	if err != nil {
		return nil, fmt.Errorf("load positions: %w", classify(err))
	}
	defer rows.Close()
	m := make(map[string]string)
	for rows.Next() {
		var o, p string
		if err := rows.Scan(&o, &p); err != nil {
			return nil, fmt.Errorf("load positions: %w", classify(err))
		}
		m[o] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load positions: %w", classify(err))
	}
	return m, nil
}

// Known-good clients and delivering relays.

// Sighting is a client seen doing good: a successful login (a known-good
// client, User the name it used, if any) or mail the server accepted from
// it (Relay: a delivering relay).
type Sighting struct {
	Addr  netip.Addr
	User  string
	Relay bool
	At    time.Time
}

// The upserts take a merged sighting (see saveSightings): the count to add,
// the first and last times, and (known_good) the user with the time of the
// sighting that named it (?6), which the stored user yields to only when
// that time is not older than the last login stored.
const (
	upsertKnownGoodSQL = `INSERT INTO known_good (addr, user, first_seen_ns, last_seen_ns, count)
	VALUES (?1, ?2, ?3, ?4, ?5)
	ON CONFLICT (addr) DO UPDATE SET
		count = count + excluded.count,
		user = CASE WHEN excluded.user != '' AND ?6 >= last_seen_ns
			THEN excluded.user ELSE user END,
		first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
		last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)`
	upsertRelaySQL = `INSERT INTO relays (addr, first_seen_ns, last_seen_ns, count)
	VALUES (?, ?, ?, ?)
	ON CONFLICT (addr) DO UPDATE SET
		count = count + excluded.count,
		first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
		last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)`
)

// addSightings records sightings in one transaction.
func (s *Store) addSightings(ctx context.Context, ss []Sighting) error {
	for _, x := range ss {
		if _, err := normAddr(x.Addr); err != nil {
			return err
		}
	}
	return s.write(ctx, func(tx *sql.Tx) error { return saveSightings(ctx, tx, ss) })
}

// seenKey is a client in one of the two tables.
type seenKey struct {
	addr  netip.Addr
	relay bool
}

// seenSum is a client's sightings in one batch, merged.
type seenSum struct {
	n, first, last int64
	user           string
	userAt         int64 // when user was seen
}

// saveSightings counts each sighting once in its table. A batch often
// holds many sightings of one client (a mail client logs in for every
// connection), so they are merged per client first, into what upserting
// them one by one in order would leave: their number, the earliest and
// latest times, and the user of the last login that named one and was not
// older than any before it. Invalid addresses are skipped (callers that
// must hear of them check first).
func saveSightings(ctx context.Context, tx *sql.Tx, ss []Sighting) error {
	if len(ss) == 0 {
		return nil
	}
	sums := make(map[seenKey]*seenSum, len(ss))
	var order []seenKey // first seen first, so that writes follow the batch
	for _, x := range ss {
		a, err := normAddr(x.Addr)
		if err != nil {
			continue
		}
		k, t := seenKey{a, x.Relay}, toNS(x.At)
		m := sums[k]
		if m == nil {
			m = &seenSum{first: t, last: t, user: x.User, userAt: t}
			sums[k], order = m, append(order, k)
		} else {
			if x.User != "" && t >= m.last {
				m.user, m.userAt = x.User, t
			}
			m.first, m.last = min(m.first, t), max(m.last, t)
		}
		m.n++
	}
	var good, relay *sql.Stmt
	defer func() {
		for _, st := range []*sql.Stmt{good, relay} {
			if st != nil {
				st.Close()
			}
		}
	}()
	for _, k := range order {
		m, addr := sums[k], k.addr.String()
		var err error
		if k.relay {
			if relay == nil {
				if relay, err = tx.PrepareContext(ctx, upsertRelaySQL); err != nil {
					return err
				}
			}
			_, err = relay.ExecContext(ctx, addr, m.first, m.last, m.n)
		} else {
			if good == nil {
				if good, err = tx.PrepareContext(ctx, upsertKnownGoodSQL); err != nil {
					return err
				}
			}
			_, err = good.ExecContext(ctx, addr, m.user, m.first, m.last, m.n, m.userAt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// KnownGood is a client that logged in successfully.
type KnownGood struct {
	Addr      netip.Addr // unmapped
	User      string     // the user of the latest login that named one
	FirstSeen time.Time
	LastSeen  time.Time
	Count     int // successful logins recorded
}

// AddKnownGood records a successful login by user from addr at time at:
// it creates the client or counts one more login, keeping the earliest and
// latest times seen. User replaces the stored user when it is not empty and
// at is not older than the last login.
func (s *Store) AddKnownGood(ctx context.Context, addr netip.Addr, user string, at time.Time) error {
	if err := s.addSightings(ctx, []Sighting{{Addr: addr, User: user, At: at}}); err != nil {
		return fmt.Errorf("add known-good client %s: %w", addr, err)
	}
	return nil
}

// KnownGood returns the clients last seen at or after since, most recent first.
func (s *Store) KnownGood(ctx context.Context, since time.Time) ([]KnownGood, error) {
	ks, err := queryAll(ctx, s.r, func(row scanner) (KnownGood, error) {
		var (
			k           KnownGood
			addr        string
			first, last int64
		)
		if err := row.Scan(&addr, &k.User, &first, &last, &k.Count); err != nil {
			return k, err
		}
		var err error
		if k.Addr, err = netip.ParseAddr(addr); err != nil {
			return k, fmt.Errorf("bad address: %w", err)
		}
		k.FirstSeen, k.LastSeen = fromNS(first), fromNS(last)
		return k, nil
	}, `SELECT addr, user, first_seen_ns, last_seen_ns, count
		FROM known_good WHERE last_seen_ns >= ? ORDER BY last_seen_ns DESC, addr`, toNS(since))
	if err != nil {
		return nil, fmt.Errorf("list known-good clients: %w", err)
	}
	return ks, nil
}

// ForgetKnownGood removes addr from the known-good clients. Forgetting an
// address that is not known is not an error.
func (s *Store) ForgetKnownGood(ctx context.Context, addr netip.Addr) error {
	a, err := normAddr(addr)
	if err != nil {
		return fmt.Errorf("forget known-good client: %w", err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM known_good WHERE addr = ?`, a.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("forget known-good client %s: %w", a, err)
	}
	return nil
}

// Delivering relays.

// Relay is a client that delivered mail the server accepted.
type Relay struct {
	Addr      netip.Addr // unmapped
	FirstSeen time.Time
	LastSeen  time.Time
	Count     int // deliveries recorded
}

// AddRelay records mail accepted from addr at time at: it creates the
// relay or counts one more delivery, keeping the earliest and latest times.
func (s *Store) AddRelay(ctx context.Context, addr netip.Addr, at time.Time) error {
	if err := s.addSightings(ctx, []Sighting{{Addr: addr, Relay: true, At: at}}); err != nil {
		return fmt.Errorf("add relay %s: %w", addr, err)
	}
	return nil
}

// Relays returns the relays last seen at or after since, most recent first.
func (s *Store) Relays(ctx context.Context, since time.Time) ([]Relay, error) {
	rs, err := queryAll(ctx, s.r, func(row scanner) (Relay, error) {
		var (
			r           Relay
			addr        string
			first, last int64
		)
		if err := row.Scan(&addr, &first, &last, &r.Count); err != nil {
			return r, err
		}
		var err error
		if r.Addr, err = netip.ParseAddr(addr); err != nil {
			return r, fmt.Errorf("bad address: %w", err)
		}
		r.FirstSeen, r.LastSeen = fromNS(first), fromNS(last)
		return r, nil
	}, `SELECT addr, first_seen_ns, last_seen_ns, count
		FROM relays WHERE last_seen_ns >= ? ORDER BY last_seen_ns DESC, addr`, toNS(since))
	if err != nil {
		return nil, fmt.Errorf("list relays: %w", err)
	}
	return rs, nil
}

// Meta.

// Meta returns the value stored under key; ok is false when there is none.
func (s *Store) Meta(ctx context.Context, key string) (value string, ok bool, err error) {
	err = s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read meta %q: %w", key, classify(err))
	}
	return value, true, nil
}

// SetMeta stores value under key, replacing any previous value.
func (s *Store) SetMeta(ctx context.Context, key, value string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
	if err != nil {
		return fmt.Errorf("write meta %q: %w", key, err)
	}
	return nil
}
