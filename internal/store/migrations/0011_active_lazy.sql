-- 0011: the history is no longer indexed by target. Nothing reads it by
-- target often enough to pay for an index that takes rows in no order: a
-- page written to the log for each decision of a flood.
DROP INDEX history_target_start;

-- Nor is the active table indexed by history id: only pruning the history
-- asks which rows the active table refers to, once for all of them.
DROP INDEX active_history;

-- The active table is brought up to date from the history in bulk (see
-- mergeActive); this is the last history id it has taken. An existing
-- database's active table has taken all of its history.
INSERT INTO meta (key, value)
	SELECT 'active_through', CAST(coalesce(max(id), 0) AS TEXT) FROM history;
