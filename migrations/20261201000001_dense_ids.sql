-- Finding and observation ids are read by people (in URLs, e-mails and on
-- the dashboard), so they stay dense: a batch reserves exactly as many ids
-- as it writes, instead of a block of 65 536 from a sequence.
--
-- A counter row, not a sequence: the reservation is part of the writing
-- transaction (a batch that rolls back hands its range back), and the row
-- lock it takes is held only by writers of findings, who take turns anyway
-- (`findings::store::lock_writers`, taken before any id is reserved).
CREATE TABLE id_ranges (
    series   text PRIMARY KEY,
    next_id  bigint NOT NULL CHECK (next_id > 0)
);

-- Past every id the old sequences handed out (their last block included).
INSERT INTO id_ranges (series, next_id)
SELECT 'findings', CASE WHEN is_called THEN last_value + 65536 ELSE 1 END FROM finding_id_blocks
UNION ALL
SELECT 'observations', CASE WHEN is_called THEN last_value + 65536 ELSE 1 END FROM observation_id_blocks;

DROP SEQUENCE finding_id_blocks;
DROP SEQUENCE observation_id_blocks;
