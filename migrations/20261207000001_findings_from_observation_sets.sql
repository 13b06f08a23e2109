-- A finding is a function of the set of its inputs (observations, scan runs
-- that covered it without seeing it, analysts' closures), whatever order or
-- chunking they arrive in (findings::fold). What that needs stored:

-- Where the inputs folded so far end, and where the last one that changed
-- the finding sits, as (time, rank) sort keys (findings::fold::SortKey). An
-- input sorting after `folded` is folded in place; one sorting between
-- `changed` and `folded` only if it changes nothing; anything else replays
-- the key's whole input set. Existing rows get both at their latest time
-- and the highest rank, so any input older than that replays: safe.
ALTER TABLE findings
    ADD COLUMN folded_at    timestamptz,
    ADD COLUMN folded_rank  smallint,
    ADD COLUMN changed_at   timestamptz,
    ADD COLUMN changed_rank smallint,
    -- The latest scan run that covered this open, compromised finding
    -- without seeing it: absence never closes a compromise, it is shown as
    -- "not seen since last_seen" instead.
    ADD COLUMN missed_at    timestamptz,
    -- The finding this one took over the key from (seen again more than
    -- 90 days after that one was resolved), so a replay finds every
    -- finding of a key from its current one.
    ADD COLUMN previous_id  bigint,
    -- A finding a late observation joined to another (it fell within 90
    -- days of that one's resolution): kept, since notifications may name
    -- it, but only as a pointer to the finding it is now part of; no list
    -- shows it.
    ADD COLUMN merged_into  bigint;
UPDATE findings SET folded_at = greatest(last_seen, resolved_at), folded_rank = 5,
                    changed_at = greatest(last_seen, resolved_at), changed_rank = 5;
UPDATE findings f SET previous_id = p.previous
  FROM (SELECT id, lag(id) OVER (PARTITION BY ip, port, protocol, check_id ORDER BY first_seen, id) AS previous
          FROM findings) p
 WHERE p.id = f.id AND p.previous IS NOT NULL;
-- `escalated_at` now means: signs of compromise seen since the finding last
-- opened (what keeps absence from closing it), so a resolution clears it.
UPDATE findings SET escalated_at = NULL WHERE status = 'resolved';
ALTER TABLE findings
    ALTER COLUMN folded_at SET NOT NULL, ALTER COLUMN folded_rank SET NOT NULL,
    ALTER COLUMN changed_at SET NOT NULL, ALTER COLUMN changed_rank SET NOT NULL;

-- A scan run resolves the findings it stored no observation of: probed per
-- finding by (finding, run). Replaces the index on finding_id alone.
CREATE INDEX observations_finding_run_idx ON observations (finding_id, scan_run_id);
DROP INDEX observations_finding_idx;

-- A not_vulnerable observation of a key without a finding belongs to no
-- finding, yet a positive observation older than it, arriving later, must
-- be folded with it: found by key. Only such rows are in this index.
CREATE INDEX observations_unowned_idx ON observations (ip, check_id, port) WHERE finding_id IS NULL;

-- An analyst closes a finding with a note (the only way, besides an
-- observation showing it gone, that a compromise is closed). An input of
-- the fold like an observation, so kept apart from the history it causes.
CREATE TABLE finding_closures (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finding_id  bigint NOT NULL,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    note        text NOT NULL CHECK (note <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX finding_closures_finding_idx ON finding_closures (finding_id);

-- History the fold writes (and rewrites when a late input replays a key):
-- `missed` (a covering run did not see a compromised finding), `closed` (an
-- analyst's closure); `merged` marks a finding a late observation joined to
-- its predecessor.
ALTER TABLE finding_events DROP CONSTRAINT finding_events_kind_check;
ALTER TABLE finding_events ADD CONSTRAINT finding_events_kind_check CHECK (kind IN
    ('opened', 'changed', 'escalated', 'resolved', 'reopened', 'missed', 'closed', 'merged',
     'attributed', 'recheck_requested', 'false_positive', 'disputed'));

-- What a finished run left open although it did not see it (compromised).
ALTER TABLE scan_runs ADD COLUMN findings_kept_open bigint NOT NULL DEFAULT 0;

-- The time span of a run's observations, so that "did this run store an
-- observation of this finding" probes only the partitions that can hold
-- one.
ALTER TABLE scan_runs ADD COLUMN observed_from timestamptz, ADD COLUMN observed_to timestamptz;

-- What a finished run resolved or left open, by absence, for its answer and
-- its page (history events of no observation but a run: absences only).
CREATE INDEX finding_events_absence_idx ON finding_events (scan_run_id)
    WHERE observation_id IS NULL AND scan_run_id IS NOT NULL;

-- A campaign reaches the compromises its vulnerabilities led to though they
-- name no CVE (campaigns::matching): the checks the check catalogue ties to
-- its CVEs, written with the campaign. Existing campaigns get what the
-- catalogue says of Exchange web shells (ProxyLogon, ProxyShell).
ALTER TABLE campaigns ADD COLUMN compromise_checks text[] NOT NULL DEFAULT '{}';
UPDATE campaigns SET compromise_checks = ARRAY['exchange-proxylogon', 'scan6_exchange', 'scan_exchange']
 WHERE cves && ARRAY['CVE-2021-26855', 'CVE-2021-26857', 'CVE-2021-26858', 'CVE-2021-27065',
                     'CVE-2021-34473', 'CVE-2021-34523', 'CVE-2021-31207'];
