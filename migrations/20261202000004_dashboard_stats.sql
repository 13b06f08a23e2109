-- What the dashboard's charts draw, aggregated ahead by a periodic job, so
-- the overview reads a few hundred rows however many observations there
-- are. Each refresh replaces the lot in one transaction.

-- Each active campaign's remediation curve: its open findings at the end
-- of each day (Europe/Oslo), from the day its first finding was seen.
CREATE TABLE dashboard_curve (
    campaign_id    bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    day            date NOT NULL,
    open_findings  bigint NOT NULL,
    PRIMARY KEY (campaign_id, day)
);

-- Open findings and affected organisations per sector.
CREATE TABLE dashboard_sectors (
    sector         text PRIMARY KEY,
    open_findings  bigint NOT NULL,
    organisations  bigint NOT NULL
);

-- When the figures above were taken (one row).
CREATE TABLE dashboard_refreshed (
    only_row       boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    at             timestamptz NOT NULL
);

-- Each campaign's matching open findings and their organisations (what
-- the campaign list and progress page show), and the overview's finding
-- totals: counts over every current finding, too slow to take per view.
CREATE TABLE dashboard_campaigns (
    campaign_id    bigint PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    open_findings  bigint NOT NULL,
    organisations  bigint NOT NULL
);

ALTER TABLE dashboard_refreshed
    ADD COLUMN open_findings           bigint NOT NULL DEFAULT 0,
    ADD COLUMN affected_organisations  bigint NOT NULL DEFAULT 0,
    ADD COLUMN triage                  bigint NOT NULL DEFAULT 0;
