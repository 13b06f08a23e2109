-- The e-mail outbox: every message Varsel sends, already rendered, queued in
-- the same transaction as the decision to send it, then delivered by workers
-- that lease rows (no lock is held while talking SMTP) and retry transient
-- failures with exponential backoff. Rows are never deleted: each ends in
-- 'sent' or 'failed', and `delivery_attempts` keeps every attempt with the
-- server's reply.
--
-- All times that decide anything (next_attempt_at, lease_until) come from
-- the application's business clock, passed as parameters, never from now().

CREATE TABLE deliveries (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The notification this message belongs to. No foreign key yet: the
    -- notifications table comes later, and will add it.
    notification_id  bigint,
    -- Whose delivery health a bounce marks; kept when the contact goes.
    contact_id       bigint REFERENCES contacts (id) ON DELETE SET NULL,
    recipient        text NOT NULL,
    recipient_name   text,
    kind             text NOT NULL CHECK (kind IN ('initial', 'reminder', 'update', 'followup',
                                                   'realert', 'closing', 'copy', 'test')),
    -- What makes "the same thing to the same recipient": a job that runs
    -- twice (or on two instances) never queues it twice.
    dedupe_key       text NOT NULL CONSTRAINT deliveries_dedupe_key UNIQUE,
    -- `<random@domain of the From address>`, made at enqueue, sent as the
    -- Message-ID header: replies and bounces can be matched to the row.
    message_id       text NOT NULL CONSTRAINT deliveries_message_id_key UNIQUE,
    subject          text NOT NULL,
    text_body        text NOT NULL,
    html_body        text NOT NULL,
    -- [{"filename": …, "content_type": …, "content": base64}, …]
    attachments      jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(attachments) = 'array'),
    language         text,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    -- Attempts claimed so far (a row put back by a rate limit gives its
    -- claim back). An operator's retry keeps the count and records where
    -- the new series of attempts starts.
    attempts         int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    retry_from_attempt int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    -- While 'sending': the worker's lease. Past it, another worker may
    -- claim the row again (the first one died or hung).
    lease_until      timestamptz,
    last_reply_code  int,
    last_reply       text,
    created_at       timestamptz NOT NULL,
    sent_at          timestamptz,
    failed_at        timestamptz,
    CHECK ((status = 'sending') = (lease_until IS NOT NULL)),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    CHECK ((status = 'failed') = (failed_at IS NOT NULL))
);
-- Claiming: due queued rows and expired leases, oldest first. Sent and
-- failed rows (nearly all of them, in time) are not in the index.
CREATE INDEX deliveries_claim_idx ON deliveries (status, next_attempt_at)
    WHERE status IN ('queued', 'sending');
CREATE INDEX deliveries_notification_idx ON deliveries (notification_id)
    WHERE notification_id IS NOT NULL;
CREATE INDEX deliveries_contact_idx ON deliveries (contact_id)
    WHERE contact_id IS NOT NULL;

-- Every attempt, with the SMTP reply: the timeline of a delivery. A row is
-- written when the attempt is claimed (outcome NULL while in flight) and
-- completed when it ends; 'lost' is an attempt whose worker's lease ran out
-- before it reported (it died or hung), so the row was claimed again.
CREATE TABLE delivery_attempts (
    delivery_id  bigint NOT NULL REFERENCES deliveries (id),
    attempt      int NOT NULL,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    outcome      text CHECK (outcome IN ('sent', 'transient', 'permanent', 'lost')),
    reply_code   int,
    reply        text,
    PRIMARY KEY (delivery_id, attempt)
);
