-- The dashboard's findings list sorts by first sighting (oldest or newest
-- first) and pages by (first_seen, id): walked in this index's order it
-- stops after a page. first_seen never changes once written, so the index
-- costs an insert per new finding and leaves rescans' in-place (HOT)
-- updates alone — which is why there is no such index on last_seen.
CREATE INDEX findings_first_seen_idx ON findings (first_seen, id) WHERE current;
