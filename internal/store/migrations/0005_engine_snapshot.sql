-- engine_snapshot holds the engine's counting state (engine.Snapshot): one
-- row, replaced at each save, in the transaction that saves the sources'
-- positions taken with it, so that after a restart no line already counted
-- is read again.
CREATE TABLE engine_snapshot (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	saved_ns INTEGER NOT NULL,
	data     BLOB    NOT NULL
);
