-- 0010: the engine snapshot in parts. A flood's snapshot is tens of
-- megabytes, and bound as one blob SQLite copied it whole into memory of
-- its own, which it keeps for reuse: the daemon's resident memory grew by
-- the snapshot's size at the first save. Parts of at most 256 KiB (see
-- store.SaveSnapshot) are rows id 1, 2, … in order; a snapshot of one part
-- is the row the earlier schema held.
CREATE TABLE engine_snapshot_parts (
	id       INTEGER PRIMARY KEY CHECK (id >= 1),
	saved_ns INTEGER NOT NULL,
	data     BLOB    NOT NULL
);
INSERT INTO engine_snapshot_parts (id, saved_ns, data)
	SELECT id, saved_ns, data FROM engine_snapshot;
DROP TABLE engine_snapshot;
ALTER TABLE engine_snapshot_parts RENAME TO engine_snapshot;
