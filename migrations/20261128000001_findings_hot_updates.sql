-- Every re-sighting rewrites its finding (last_seen, last_observation_id).
-- With free room on the page and no indexed column changed, PostgreSQL
-- writes the new row version beside the old one (a HOT update) and leaves
-- the four indexes alone; on full pages each rewrite also inserts into
-- every index, which made rewrites the most expensive step of ingest.
ALTER TABLE findings SET (fillfactor = 70);

-- Status flips on every resolve and reopen; kept in this index it made each
-- of those rewrites touch every index. Findings per organisation are few
-- enough to filter by status after the index lookup.
DROP INDEX findings_organisation_idx;
CREATE INDEX findings_organisation_idx ON findings (organisation_id);
