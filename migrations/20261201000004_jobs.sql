-- Durable background work. A job is enqueued in the same transaction as the
-- change that causes it, claimed with a lease (no lock held while it runs),
-- retried with backoff, and ends `done` or `failed`; rows are kept so that
-- failures stay visible and can be retried by an operator.
CREATE TABLE jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL,
    -- The whole job, as the code's `Job` enum serialises it.
    payload       jsonb NOT NULL,
    -- Pending jobs with the same key are one job: enqueueing again while
    -- one waits is a no-op. A running job does not count, because it may
    -- already have read what the new change wrote.
    dedupe_key    text,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    max_attempts  integer NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
    run_at        timestamptz NOT NULL,
    lease_until   timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE UNIQUE INDEX jobs_pending_key ON jobs (dedupe_key) WHERE status = 'pending';
CREATE INDEX jobs_due_idx ON jobs (run_at) WHERE status IN ('pending', 'running');
CREATE INDEX jobs_failed_idx ON jobs (id) WHERE status = 'failed';

-- Wakes the workers of every instance when a job is committed.
CREATE FUNCTION notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('varsel_jobs', '');
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_notify AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION notify_jobs();

-- A registry change may give an owner to findings in the triage queue:
-- every statement that changes networks or ASNs enqueues late attribution
-- in its own transaction, whoever made it (the API, an import, psql).
-- `now()` here is the transaction's time, never later than the service's
-- clock, so the job is due at once.
CREATE FUNCTION enqueue_late_attribution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO jobs (kind, payload, dedupe_key, run_at)
    VALUES ('attribute_triage', '{"kind": "attribute_triage"}', 'attribute_triage', now())
    ON CONFLICT (dedupe_key) WHERE status = 'pending' DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER networks_late_attribution AFTER INSERT OR UPDATE ON networks
    FOR EACH STATEMENT EXECUTE FUNCTION enqueue_late_attribution();
CREATE TRIGGER asns_late_attribution AFTER INSERT OR UPDATE ON asns
    FOR EACH STATEMENT EXECUTE FUNCTION enqueue_late_attribution();
