-- 0008: the abuse reports' queue (issue 14), and the abuse contacts RDAP
-- named.

-- reports are the reports to send, and those sent, failed or refused, kept
-- for the deduplication period at least: a reporter (abuseipdb, netcraft,
-- abuse_contacts, webhook, postmaster) reports a target (an address, a
-- URL, a domain) of a kind (attack, spam, url, domain, recipients,
-- message) once in that period, across restarts. state: review (held for
-- `rampart abuse approve`), pending, sending, sent, failed, rejected,
-- dry-run. subject is what is reported, as JSON; destination where it
-- went (an abuse mailbox, an API); receipt what the service answered (a
-- submission id).
CREATE TABLE reports (
	id          INTEGER PRIMARY KEY,
	reporter    TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	target      TEXT    NOT NULL,
	state       TEXT    NOT NULL,
	subject     TEXT    NOT NULL,
	destination TEXT    NOT NULL DEFAULT '',
	created_ns  INTEGER NOT NULL,
	next_ns     INTEGER NOT NULL DEFAULT 0,
	sent_ns     INTEGER NOT NULL DEFAULT 0,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT    NOT NULL DEFAULT '',
	receipt     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX reports_due ON reports (state, next_ns);
CREATE INDEX reports_target ON reports (reporter, target, created_ns);
CREATE INDEX reports_sent ON reports (reporter, destination, sent_ns);

-- abuse_contacts caches what RDAP said: the abuse address for a network
-- or a domain (key: "ip:ADDR-RANGE" or "domain:NAME"), "" when it named
-- none.
CREATE TABLE abuse_contacts (
	key        TEXT    PRIMARY KEY,
	contact    TEXT    NOT NULL,
	fetched_ns INTEGER NOT NULL
) WITHOUT ROWID;
