-- Ingest: scan runs, observations (partitioned by time), findings with their
-- append-only history, and idempotency keys for safely retried POSTs.

CREATE TABLE scan_runs (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id              bigint REFERENCES api_clients (id),
    scanner                text NOT NULL,
    checks                 text[] NOT NULL DEFAULT '{}',
    scope                  cidr[] NOT NULL DEFAULT '{}',
    started_at             timestamptz NOT NULL,
    finished_at            timestamptz,
    observations_accepted  bigint NOT NULL DEFAULT 0,
    observations_rejected  bigint NOT NULL DEFAULT 0,
    findings_resolved      bigint NOT NULL DEFAULT 0,
    created_at             timestamptz NOT NULL DEFAULT now()
);

-- Observation ids are handed out in blocks, so a batch knows its ids before
-- it writes (the findings history points at them).
CREATE SEQUENCE observation_id_blocks AS bigint INCREMENT BY 65536 START WITH 65536;

-- No primary key or foreign keys: this is an append-only log written by COPY
-- at tens of thousands of rows per second, and old partitions are dropped by
-- the retention job. Rows are written only by the ingest pipeline, in the same
-- transaction as the findings they feed.
CREATE TABLE observations (
    id               bigint NOT NULL,
    observed_at      timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    scan_run_id      bigint,
    finding_id       bigint,
    ip               inet NOT NULL,
    port             integer NOT NULL,
    protocol         text NOT NULL,
    check_id         text NOT NULL,
    state            text NOT NULL,
    cves             text[] NOT NULL DEFAULT '{}',
    severity         text,
    hostname         text,
    product          text,
    version          text,
    asn              bigint,
    evidence         json,
    raw              text NOT NULL,
    organisation_id  bigint,
    network_id       bigint,
    attribution      text NOT NULL
) PARTITION BY RANGE (observed_at);
CREATE INDEX observations_finding_idx ON observations (finding_id);

-- Like observations, findings get their ids in blocks, so that a batch can
-- write new findings with COPY and know their ids.
CREATE SEQUENCE finding_id_blocks AS bigint INCREMENT BY 65536 START WITH 65536;

CREATE TABLE findings (
    id                bigint PRIMARY KEY,
    ip                inet NOT NULL,
    port              integer NOT NULL,
    -- Byte-wise comparison: these are identifiers, and the key index is
    -- probed tens of thousands of times per ingest batch.
    protocol          text COLLATE "C" NOT NULL,
    check_id          text COLLATE "C" NOT NULL,
    -- false once a later finding took over the same key (seen again more than
    -- 90 days after it was resolved).
    current           boolean NOT NULL DEFAULT true,
    status            text NOT NULL CHECK (status IN ('open', 'resolved')),
    state             text NOT NULL,
    worst_state       text NOT NULL,
    severity          text,
    cves              text[] NOT NULL DEFAULT '{}',
    first_seen        timestamptz NOT NULL,
    last_seen         timestamptz NOT NULL,
    resolved_at       timestamptz,
    escalated_at      timestamptz,
    -- No foreign keys here or on finding_events: the checks would lock the
    -- referenced rows once per finding written, which halves ingest speed.
    -- The references cannot dangle: an organisation that owns a network or
    -- an ASN cannot be deleted (those keep foreign keys), networks are never
    -- deleted (only ended), and neither are findings.
    organisation_id   bigint,
    network_id        bigint,
    asn               bigint,
    attribution       text NOT NULL,
    last_observation_id bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX findings_current_key ON findings (ip, port, protocol, check_id) WHERE current;
CREATE INDEX findings_organisation_idx ON findings (organisation_id, status);
CREATE INDEX findings_unattributed_idx ON findings (id) WHERE organisation_id IS NULL;

CREATE TABLE finding_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finding_id      bigint NOT NULL,
    at              timestamptz NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('opened', 'changed', 'escalated', 'resolved', 'reopened', 'attributed')),
    reason          text NOT NULL,
    observation_id  bigint,
    scan_run_id     bigint,
    from_state      text,
    to_state        text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX finding_events_finding_idx ON finding_events (finding_id);

CREATE TABLE idempotency_keys (
    client_id      bigint NOT NULL REFERENCES api_clients (id),
    key            text NOT NULL,
    method         text NOT NULL,
    path           text NOT NULL,
    request_hash   bytea NOT NULL,
    status         smallint NOT NULL,
    response       bytea NOT NULL,
    content_type   text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
