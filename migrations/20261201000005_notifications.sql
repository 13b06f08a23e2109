-- Notifications: one per (campaign, organisation), grouping all of that
-- organisation's matching findings, with a ticket reference, private link
-- tokens (hashes only) and a timeline. The mails themselves are rows of the
-- outbox (`deliveries`), written in the same transaction as the decision
-- to send them.

-- A sector may name a response team (an organisation of the registry, e.g.
-- the municipal sector's CERT) that gets a copy of the notifications of
-- the sector's organisations, when the campaign says so.
CREATE TABLE sectors (
    name              text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 100),
    response_team_id  bigint REFERENCES organisations (id) ON DELETE SET NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Ticket numbers are never reused, whatever is rolled back or deleted.
CREATE SEQUENCE ticket_numbers AS bigint START WITH 1;

CREATE TABLE notifications (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id      bigint NOT NULL REFERENCES campaigns (id),
    organisation_id  bigint NOT NULL REFERENCES organisations (id),
    -- VARSEL-2021-000042: the year it was drafted and a ticket number.
    ticket           text NOT NULL CONSTRAINT notifications_ticket_key UNIQUE,
    status           text NOT NULL DEFAULT 'draft' CHECK (status IN
                     ('draft', 'approved', 'sent', 'acknowledged', 'resolved', 'no_contact', 'expired')),
    created_at       timestamptz NOT NULL,
    approved_at      timestamptz,
    approved_by      text,
    -- When the first mails were queued (after approval, by the mailing job).
    mailed_at        timestamptz,
    -- When the first of them was accepted by the mail server.
    sent_at          timestamptz,
    acknowledged_at  timestamptz,
    resolved_at      timestamptz,
    -- Every link made for it expires by then (the latest).
    link_expires_at  timestamptz,
    -- Reminders sent so far (index into the campaign's reminder_days).
    reminders_sent   integer NOT NULL DEFAULT 0,
    -- Follow-up mails ("new hosts found") sent so far, and when the last
    -- went out: at most one per the campaign's follow-up interval.
    followups_sent   integer NOT NULL DEFAULT 0,
    last_followup_at timestamptz,
    CONSTRAINT notifications_campaign_organisation_key UNIQUE (campaign_id, organisation_id)
);
CREATE INDEX notifications_status_idx ON notifications (campaign_id, status);
CREATE INDEX notifications_organisation_idx ON notifications (organisation_id);

-- The findings a notification groups. `mailed_at` is when a mail first
-- listed the finding; NULL ones are news for the next follow-up.
CREATE TABLE notification_findings (
    notification_id  bigint NOT NULL REFERENCES notifications (id),
    finding_id       bigint NOT NULL,
    added_at         timestamptz NOT NULL,
    mailed_at        timestamptz,
    -- When a mail told of its escalation to `compromised`.
    realerted_at     timestamptz,
    PRIMARY KEY (notification_id, finding_id)
);
CREATE INDEX notification_findings_finding_idx ON notification_findings (finding_id);

-- Private advisory links, one per mail. The token is an HMAC, under the
-- service's link secret (configuration, not this database), of `salt`;
-- only its SHA-256 is kept here (see notifications::tokens).
CREATE TABLE notification_tokens (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES notifications (id),
    salt             bytea NOT NULL CHECK (length(salt) = 32),
    token_hash       bytea NOT NULL CONSTRAINT notification_tokens_hash_key UNIQUE,
    created_at       timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz
);
CREATE INDEX notification_tokens_notification_idx ON notification_tokens (notification_id);

-- The timeline: drafted, approved, no contact, findings added, each mail
-- queued and each delivery's outcome, reminders, updates, re-alerts,
-- resolved.
CREATE TABLE notification_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id  bigint NOT NULL REFERENCES notifications (id),
    at               timestamptz NOT NULL,
    kind             text NOT NULL,
    actor            text NOT NULL,
    detail           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX notification_events_notification_idx ON notification_events (notification_id, id);

ALTER TABLE deliveries ADD CONSTRAINT deliveries_notification_id_fkey
    FOREIGN KEY (notification_id) REFERENCES notifications (id);
-- The link whose token the outbox puts into the mail as it sends it.
ALTER TABLE deliveries ADD COLUMN link_token_id bigint REFERENCES notification_tokens (id);
