-- 0009: where the trap's clients are (issue 16): each quarantined
-- message's client placed as history places a decision's target (its
-- country, autonomous system and the organisation, as the geo databases
-- said when the message arrived; '' and 0 when unknown). Messages kept
-- before this migration stay unknown here; reports and the dashboard place
-- them with the databases in force when they are read.
ALTER TABLE quarantine ADD COLUMN country TEXT    NOT NULL DEFAULT '';
ALTER TABLE quarantine ADD COLUMN asn     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE quarantine ADD COLUMN as_org  TEXT    NOT NULL DEFAULT '';
