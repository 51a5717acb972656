-- relays lists clients that delivered mail the server accepted (issue 11's
-- delivering relays): their unknown recipients are bounces, and they are
-- carved out of prefix bans. They are kept apart from known_good: a relay
-- is good for its own, shorter time, and never logged in.
CREATE TABLE relays (
	addr          TEXT    PRIMARY KEY,
	first_seen_ns INTEGER NOT NULL,
	last_seen_ns  INTEGER NOT NULL,
	count         INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
CREATE INDEX relays_last_seen ON relays (last_seen_ns);
