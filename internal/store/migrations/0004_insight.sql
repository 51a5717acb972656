-- 0004: insight (issue 16): where each decision's target is, and hourly
-- aggregates of failures and bans that outlive the history.

-- The target's country (ISO 3166-1 alpha-2), autonomous system and its
-- organisation, as the geo databases said when the decision was recorded;
-- '' and 0 when unknown (no database, or an address it does not cover).
ALTER TABLE history ADD COLUMN country TEXT    NOT NULL DEFAULT '';
ALTER TABLE history ADD COLUMN asn     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE history ADD COLUMN as_org  TEXT    NOT NULL DEFAULT '';

-- hourly counts failures (events that count against an address) and bans
-- per hour, jail and one dimension at a time: dim is 'total' (key ''),
-- 'country' (key 'NL', '' unknown), 'asn' (key '64500', label the
-- organisation), 'prefix' ('192.0.2.0/24', '2001:db8::/64'), 'user',
-- 'service', 'scenario' (bans only), 'kind' (failures only). hour_ns is
-- the hour's start; rows older than a few days are folded into one row
-- per day (hour_ns at midnight UTC). Past a cap of keys per (hour, dim,
-- jail) the smallest are folded into key '*' (others). Counts only add
-- up, so hourly rows from several hosts merge by summing.
CREATE TABLE hourly (
	hour_ns  INTEGER NOT NULL,
	jail     TEXT    NOT NULL,
	dim      TEXT    NOT NULL,
	key      TEXT    NOT NULL,
	label    TEXT    NOT NULL DEFAULT '',
	failures INTEGER NOT NULL DEFAULT 0,
	bans     INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (hour_ns, jail, dim, key)
) WITHOUT ROWID;
-- Reports by dimension over a time range.
CREATE INDEX hourly_dim ON hourly (dim, hour_ns);
