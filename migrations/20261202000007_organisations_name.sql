-- Notification lists sort by the organisation's name and page by
-- (name, id): walking this index, a page of a campaign's 18 000
-- notifications reads a page of organisations instead of sorting all of
-- them (the bench: p99 78 ms before, see BENCHMARKS.md).
CREATE INDEX organisations_name_idx ON organisations (name);
