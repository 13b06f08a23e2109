-- Foundation: API clients (bearer tokens), the audit log, and the registry of
-- organisations, contacts, networks, ASNs and domains with ownership history.

CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

-- A REST client. Only the SHA-256 of its token is stored.
CREATE TABLE api_clients (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    scopes        text[] NOT NULL CHECK (scopes <@ ARRAY['ingest', 'read', 'admin'] AND cardinality(scopes) > 0),
    token_hash    bytea NOT NULL CONSTRAINT api_clients_token_hash_key UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    subject     text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at_idx ON audit_events (at);

-- Where a row came from, for re-imports: 'api' rows were entered by people
-- and are never touched by an importer; 'csv' and 'ripe' rows belong to that
-- importer, which may change or end them.
CREATE DOMAIN registry_channel AS text CHECK (VALUE IN ('api', 'csv', 'ripe'));
CREATE DOMAIN registry_source AS text CHECK (VALUE IN ('manual', 'organisation', 'registry'));

CREATE TABLE organisations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ref         text NOT NULL CONSTRAINT organisations_ref_key UNIQUE CHECK (length(ref) BETWEEN 1 AND 100),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
    -- Not unique: one legal entity may be registered as several
    -- organisations (a municipality's departments, each with its networks).
    org_number  text CHECK (org_number ~ '^[0-9]{9}$'),
    sector      text,
    notes       text,
    channel     registry_channel NOT NULL DEFAULT 'api',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX organisations_org_number_idx ON organisations (org_number);
CREATE TRIGGER organisations_updated_at BEFORE UPDATE ON organisations
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE contacts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organisation_id  bigint NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    email            text NOT NULL,
    name             text,
    role             text NOT NULL CHECK (role IN ('security', 'technical', 'abuse', 'management')),
    language         text NOT NULL CHECK (language IN ('nb', 'nn', 'en')),
    enabled          boolean NOT NULL DEFAULT true,
    provenance       registry_source NOT NULL DEFAULT 'manual',
    channel          registry_channel NOT NULL DEFAULT 'api',
    last_bounce_at   timestamptz,
    last_failure     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT contacts_organisation_email_key UNIQUE (organisation_id, email)
);
CREATE TRIGGER contacts_updated_at BEFORE UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Ownership has history: a row is valid in [valid_from, valid_to); NULL
-- valid_from is "since the beginning of time", NULL valid_to "still valid".
-- Rows are never rewritten: a change ends the old row and starts a new one.
CREATE TABLE networks (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organisation_id  bigint NOT NULL REFERENCES organisations (id),
    cidr             cidr NOT NULL,
    source           registry_source NOT NULL,
    channel          registry_channel NOT NULL,
    name             text,
    valid_from       timestamptz,
    valid_to         timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT networks_validity_check CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX networks_current_key ON networks (cidr, channel) WHERE valid_to IS NULL;
CREATE INDEX networks_organisation_idx ON networks (organisation_id);

CREATE TABLE asns (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organisation_id  bigint NOT NULL REFERENCES organisations (id),
    asn              bigint NOT NULL CHECK (asn BETWEEN 0 AND 4294967295),
    source           registry_source NOT NULL,
    channel          registry_channel NOT NULL,
    name             text,
    valid_from       timestamptz,
    valid_to         timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT asns_validity_check CHECK (valid_from IS NULL OR valid_to IS NULL OR valid_to > valid_from)
);
CREATE UNIQUE INDEX asns_current_key ON asns (asn, channel) WHERE valid_to IS NULL;
CREATE INDEX asns_organisation_idx ON asns (organisation_id);

CREATE TABLE domains (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organisation_id  bigint NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    domain           text NOT NULL CONSTRAINT domains_domain_key UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX domains_organisation_idx ON domains (organisation_id);

-- Every instance keeps an in-memory copy of the prefix table. A statement
-- that changes what attribution answers bumps this generation in the same
-- transaction, so an instance can tell cheaply whether its copy is current.
CREATE TABLE registry_generation (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation  bigint NOT NULL
);
INSERT INTO registry_generation VALUES (true, 1);

CREATE FUNCTION bump_registry_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_generation SET generation = generation + 1;
    PERFORM pg_notify('varsel_registry', '');
    RETURN NULL;
END $$;

CREATE TRIGGER networks_generation AFTER INSERT OR UPDATE OR DELETE ON networks
    FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_generation();
CREATE TRIGGER asns_generation AFTER INSERT OR UPDATE OR DELETE ON asns
    FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_generation();
CREATE TRIGGER organisations_generation AFTER UPDATE OF ref OR DELETE ON organisations
    FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_generation();
