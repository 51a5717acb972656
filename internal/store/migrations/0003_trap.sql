-- 0003: the trap (issue 13): decoy accounts learned from the attacks, the
-- user names known to be real (never made decoys), and quarantined mail.

-- trap_accounts are user names that do not exist here and were tried from
-- several addresses: the trap lets an attacker log in as them. user is
-- folded (lower case, trimmed). last_seen_ns moves when the name is tried
-- again, in the logs or at the trap; an account not seen for the lifetime
-- is pruned.
CREATE TABLE trap_accounts (
	user          TEXT    PRIMARY KEY,
	first_seen_ns INTEGER NOT NULL,
	last_seen_ns  INTEGER NOT NULL,
	addresses     INTEGER NOT NULL DEFAULT 0,
	logins        INTEGER NOT NULL DEFAULT 0,
	last_login_ns INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX trap_accounts_last_seen ON trap_accounts (last_seen_ns);

-- real_users are names that logged in successfully somewhere (folded):
-- never trap accounts, whatever the logs say later. known_good keeps only
-- the latest user per address, so the names are kept here too, starting
-- with those it holds.
CREATE TABLE real_users (
	user         TEXT    PRIMARY KEY,
	last_seen_ns INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO real_users (user, last_seen_ns)
	SELECT lower(trim(user)), max(last_seen_ns) FROM known_good
	WHERE trim(user) != '' GROUP BY lower(trim(user));

-- quarantine holds the messages the trap accepted and never delivered:
-- the raw message (capped: truncated says so, size is what the client
-- sent), the envelope (rcpt_to: one recipient a line), the trap account,
-- the client, the port it dialled and whether TLS was on.
CREATE TABLE quarantine (
	id          INTEGER PRIMARY KEY,
	queue_id    TEXT    NOT NULL,
	received_ns INTEGER NOT NULL,
	client      TEXT    NOT NULL,
	port        INTEGER NOT NULL DEFAULT 0,
	helo        TEXT    NOT NULL DEFAULT '',
	account     TEXT    NOT NULL DEFAULT '',
	tls         INTEGER NOT NULL DEFAULT 0,
	mail_from   TEXT    NOT NULL DEFAULT '',
	rcpt_to     TEXT    NOT NULL DEFAULT '',
	size        INTEGER NOT NULL,
	truncated   INTEGER NOT NULL DEFAULT 0,
	raw         BLOB    NOT NULL
);
CREATE INDEX quarantine_received ON quarantine (received_ns);
