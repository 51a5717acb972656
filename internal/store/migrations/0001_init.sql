-- 0001: decisions, ban history, source positions, known-good clients, meta.
--
-- Conventions: times are INTEGER unix nanoseconds (UTC); 0 stands for "no time"
-- and a NULL end_ns for "until revoked". Addresses and prefixes are TEXT in
-- netip's canonical form, IPv4-mapped IPv6 unmapped ("192.0.2.1/32", "2001:db8::/64").

-- history is the append-only record of every decision and every revocation.
-- A decision row whose ban is lifted early gets revoked_ns set, and a
-- 'revoke' row is appended beside it, so the log reads in time order.
CREATE TABLE history (
	id         INTEGER PRIMARY KEY,
	kind       TEXT    NOT NULL CHECK (kind IN ('decision', 'revoke')),
	target     TEXT    NOT NULL,
	action     TEXT    NOT NULL,
	start_ns   INTEGER NOT NULL,
	end_ns     INTEGER,
	scenario   TEXT    NOT NULL DEFAULT '',
	reason     TEXT    NOT NULL DEFAULT '',
	jail       TEXT    NOT NULL DEFAULT '',
	origin     TEXT    NOT NULL DEFAULT '',
	revoked_ns INTEGER
);
-- BanCount and History for one target.
CREATE INDEX history_target_start ON history (target, start_ns);
-- History over all targets, newest first, and PruneHistory.
CREATE INDEX history_start ON history (start_ns);

-- active holds at most one decision per target: the latest one recorded.
-- Its fields live in history; start_ns and end_ns are copied here so that
-- "what is in force now" and expiry never touch the history table.
CREATE TABLE active (
	target     TEXT    PRIMARY KEY,
	history_id INTEGER NOT NULL REFERENCES history (id),
	start_ns   INTEGER NOT NULL,
	end_ns     INTEGER
) WITHOUT ROWID;
CREATE INDEX active_end ON active (end_ns);
-- Lets the foreign-key check on a history delete find its child without a scan.
CREATE INDEX active_history ON active (history_id);

-- positions are the log sources' resume points: opaque strings (a file
-- follower's dev/inode/offset/hash, a journald cursor) keyed by origin.
CREATE TABLE positions (
	origin     TEXT    PRIMARY KEY,
	pos        TEXT    NOT NULL,
	updated_ns INTEGER NOT NULL
) WITHOUT ROWID;

-- known_good lists clients that logged in successfully.
CREATE TABLE known_good (
	addr          TEXT    PRIMARY KEY,
	user          TEXT    NOT NULL DEFAULT '',
	first_seen_ns INTEGER NOT NULL,
	last_seen_ns  INTEGER NOT NULL,
	count         INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
CREATE INDEX known_good_last_seen ON known_good (last_seen_ns);

-- meta is a small key/value table for state that has no table of its own.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
