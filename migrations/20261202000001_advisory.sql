-- The organisation's advisory page: what it answered (responses), what
-- those answers set on findings (re-check requested, false-positive flag,
-- ownership disputed), escalations of reported compromise, proposed
-- contacts, and how often the page was opened.

-- "Fixed, please re-check": open until a later observation says otherwise;
-- a scanner lists these first (GET /api/v1/rechecks).
ALTER TABLE findings ADD COLUMN recheck_requested_at timestamptz;
-- A false positive is a flag with an expiry, not a status: until then the
-- finding counts for nothing (reminders, open counts, resolution).
ALTER TABLE findings ADD COLUMN false_positive_until timestamptz;
ALTER TABLE findings ADD COLUMN false_positive_reason text;
-- "Not ours": the organisation that said so. The finding goes back to the
-- triage queue, and late attribution never gives it to that organisation
-- again (an analyst can, by hand).
ALTER TABLE findings ADD COLUMN disputed_by bigint;
CREATE INDEX findings_recheck_idx ON findings (id)
    WHERE recheck_requested_at IS NOT NULL AND status = 'open' AND current;

ALTER TABLE notifications ADD COLUMN first_opened_at timestamptz;
ALTER TABLE notifications ADD COLUMN last_opened_at timestamptz;
ALTER TABLE notifications ADD COLUMN open_count integer NOT NULL DEFAULT 0;

-- One form sent from the page. Its key is a nonce the page put into the
-- form, so a double submit (or a retried POST) records nothing twice.
CREATE TABLE response_submissions (
    notification_id  bigint NOT NULL REFERENCES notifications (id),
    key              text NOT NULL CHECK (length(key) BETWEEN 16 AND 64),
    at               timestamptz NOT NULL,
    PRIMARY KEY (notification_id, key)
);

CREATE TABLE responses (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES notifications (id),
    -- For answers about one finding (fixed, false positive, not ours).
    finding_id       bigint,
    kind             text NOT NULL CHECK (kind IN ('acknowledged', 'fixed', 'false_positive',
                     'not_ours', 'compromise', 'comment', 'contact_change')),
    at               timestamptz NOT NULL,
    -- Where the answer came from (the page's client address).
    client_addr      inet,
    -- What was said: reason, comment, contact person, …
    detail           jsonb NOT NULL DEFAULT '{}',
    submission_key   text NOT NULL
);
CREATE INDEX responses_notification_idx ON responses (notification_id, id);

-- "We found signs of compromise": open until an analyst takes it and
-- closes it with a note.
CREATE TABLE escalations (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES notifications (id),
    response_id      bigint NOT NULL REFERENCES responses (id) CONSTRAINT escalations_response_key UNIQUE,
    opened_at        timestamptz NOT NULL,
    contact_name     text NOT NULL,
    phone            text NOT NULL,
    observed         text NOT NULL,
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'taken', 'closed')),
    taken_by         text,
    taken_at         timestamptz,
    closed_by        text,
    closed_at        timestamptz,
    close_note       text
);
CREATE INDEX escalations_status_idx ON escalations (status, id);

-- A contact address the organisation proposed; used once an analyst
-- confirms it (it then becomes a contact of provenance `organisation`).
CREATE TABLE contact_proposals (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES notifications (id),
    organisation_id  bigint NOT NULL REFERENCES organisations (id),
    response_id      bigint NOT NULL REFERENCES responses (id),
    email            text NOT NULL,
    name             text,
    language         text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'confirmed', 'rejected')),
    decided_by       text,
    decided_at       timestamptz,
    contact_id       bigint REFERENCES contacts (id) ON DELETE SET NULL
);
CREATE INDEX contact_proposals_status_idx ON contact_proposals (status, id);

-- What the organisation said about a finding is part of its history.
ALTER TABLE finding_events DROP CONSTRAINT finding_events_kind_check;
ALTER TABLE finding_events ADD CONSTRAINT finding_events_kind_check CHECK (kind IN
    ('opened', 'changed', 'escalated', 'resolved', 'reopened', 'attributed',
     'recheck_requested', 'false_positive', 'disputed'));

-- The page finds the language of the mail its link came in.
CREATE INDEX deliveries_link_token_idx ON deliveries (link_token_id) WHERE link_token_id IS NOT NULL;

-- The sweep ends false-positive flags whose time ran out.
CREATE INDEX findings_false_positive_idx ON findings (false_positive_until)
    WHERE false_positive_until IS NOT NULL;
