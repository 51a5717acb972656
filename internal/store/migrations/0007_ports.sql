-- 0007: per-port bans. A decision may ban an address on some destination
-- ports only (event.Decision.Ports): history keeps them as text
-- ("22/tcp,465/tcp", event.FormatPorts; '' for a whole-host ban), and an
-- address may hold a whole-host decision and per-port decisions of jails
-- with other ports at once, so active is keyed by target and ports.
ALTER TABLE history ADD COLUMN ports TEXT NOT NULL DEFAULT '';

CREATE TABLE active_ports (
	target     TEXT    NOT NULL,
	ports      TEXT    NOT NULL DEFAULT '',
	history_id INTEGER NOT NULL REFERENCES history (id),
	start_ns   INTEGER NOT NULL,
	end_ns     INTEGER,
	PRIMARY KEY (target, ports)
) WITHOUT ROWID;
INSERT INTO active_ports (target, ports, history_id, start_ns, end_ns)
	SELECT target, '', history_id, start_ns, end_ns FROM active;
DROP TABLE active;
ALTER TABLE active_ports RENAME TO active;
CREATE INDEX active_end ON active (end_ns);
CREATE INDEX active_history ON active (history_id);
