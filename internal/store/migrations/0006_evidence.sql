-- 0006: evidence (issue 14): what the trap's quarantined messages carried.

-- indicators are the facts read from quarantined mail (kind: url, domain,
-- from, reply-to, return-path, recipient, contact, attachment-sha256,
-- client, helo), each counted once per message that carried it, with the
-- times of the first and the last such message. One not seen for the
-- evidence retention is pruned.
CREATE TABLE indicators (
	id            INTEGER PRIMARY KEY,
	kind          TEXT    NOT NULL,
	value         TEXT    NOT NULL,
	first_seen_ns INTEGER NOT NULL,
	last_seen_ns  INTEGER NOT NULL,
	messages      INTEGER NOT NULL DEFAULT 0,
	UNIQUE (kind, value)
);
CREATE INDEX indicators_last_seen ON indicators (last_seen_ns);

-- extracted marks the quarantined messages already read, with what they
-- carried (the extractor's result as JSON); it goes with its message.
CREATE TABLE extracted (
	message_id   INTEGER PRIMARY KEY REFERENCES quarantine (id) ON DELETE CASCADE,
	extracted_ns INTEGER NOT NULL,
	result       TEXT    NOT NULL
);

-- message_indicators says which message carried which indicator.
CREATE TABLE message_indicators (
	message_id   INTEGER NOT NULL REFERENCES quarantine (id) ON DELETE CASCADE,
	indicator_id INTEGER NOT NULL REFERENCES indicators (id) ON DELETE CASCADE,
	PRIMARY KEY (message_id, indicator_id)
) WITHOUT ROWID;
CREATE INDEX message_indicators_indicator ON message_indicators (indicator_id);
