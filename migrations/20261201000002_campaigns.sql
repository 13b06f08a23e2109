-- Campaigns (advisories): what an organisation is told about a mass
-- vulnerability, in Norwegian Bokmål and English, which findings the
-- campaign covers, and the settings of its notification rounds. Dated
-- updates are appended while the campaign is active.
--
-- The rules (required texts, slug shape, status transitions) are enforced
-- by `campaigns::store`, which names the field at fault; the checks here
-- only keep the table from holding what no code path writes.

CREATE TABLE campaigns (
    id                       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug                     text NOT NULL CONSTRAINT campaigns_slug_key UNIQUE
                             CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,99}$'),
    status                   text NOT NULL DEFAULT 'draft'
                             CHECK (status IN ('draft', 'active', 'closed')),
    -- FIRST TLP 2.0 labels, spelt as the standard spells them.
    tlp                      text NOT NULL
                             CHECK (tlp IN ('CLEAR', 'GREEN', 'AMBER', 'AMBER+STRICT', 'RED')),
    severity                 text NOT NULL
                             CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    -- Markdown. Both languages always: a contact reads the one it chose.
    title_nb                 text NOT NULL,
    summary_nb               text NOT NULL,
    impact_nb                text NOT NULL,
    what_to_do_nb            text NOT NULL,
    how_to_check_nb          text NOT NULL,
    references_nb            text NOT NULL,
    title_en                 text NOT NULL,
    summary_en               text NOT NULL,
    impact_en                text NOT NULL,
    what_to_do_en            text NOT NULL,
    how_to_check_en          text NOT NULL,
    references_en            text NOT NULL,
    -- Which findings the campaign covers: see campaigns::matching.
    checks                   text[] NOT NULL DEFAULT '{}',
    cves                     text[] NOT NULL DEFAULT '{}',
    states                   text[] NOT NULL DEFAULT '{vulnerable,compromised}'
                             CHECK (cardinality(states) > 0
                                    AND states <@ ARRAY['vulnerable', 'compromised', 'unknown']),
    -- Days after the first notification, strictly increasing.
    reminder_days            integer[] NOT NULL DEFAULT '{3,7}',
    auto_approve             boolean NOT NULL DEFAULT false,
    copy_sector_teams        boolean NOT NULL DEFAULT true,
    closing_mail             boolean NOT NULL DEFAULT false,
    followup_interval_hours  integer NOT NULL DEFAULT 24
                             CHECK (followup_interval_hours BETWEEN 1 AND 720),
    link_valid_days          integer NOT NULL DEFAULT 90
                             CHECK (link_valid_days BETWEEN 1 AND 365),
    created_by               text NOT NULL,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    -- Business time (the application's clock), not now().
    activated_at             timestamptz,
    closed_at                timestamptz,
    CONSTRAINT campaigns_matches_something CHECK (cardinality(checks) + cardinality(cves) > 0),
    CONSTRAINT campaigns_status_times CHECK (
        (status = 'draft' AND activated_at IS NULL AND closed_at IS NULL)
        OR (status = 'active' AND activated_at IS NOT NULL AND closed_at IS NULL)
        OR (status = 'closed' AND activated_at IS NOT NULL AND closed_at IS NOT NULL)
    )
);
CREATE INDEX campaigns_status_idx ON campaigns (status, id);
CREATE TRIGGER campaigns_updated_at BEFORE UPDATE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Dated updates ("Oppdatering 08.03.2021 …"), appended while the campaign
-- is active, never changed.
CREATE TABLE campaign_updates (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    campaign_id  bigint NOT NULL REFERENCES campaigns (id),
    posted_at    timestamptz NOT NULL,
    body_nb      text NOT NULL,
    body_en      text NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaign_updates_campaign_idx ON campaign_updates (campaign_id, posted_at);
