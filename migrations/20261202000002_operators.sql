-- The analysts' dashboard: operators (people with a login and a role) and
-- their sessions. A session's id is a credential: only its SHA-256 is kept.

CREATE TABLE operators (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Lower-cased; the login name.
    email            text NOT NULL CONSTRAINT operators_email_key UNIQUE,
    name             text,
    role             text NOT NULL CHECK (role IN ('admin', 'analyst', 'viewer')),
    -- argon2id, as a PHC string.
    password_hash    text NOT NULL,
    disabled_at      timestamptz,
    -- Wrong passwords in a row; at the limit the account locks for a while.
    failed_logins    integer NOT NULL DEFAULT 0,
    locked_until     timestamptz,
    last_login_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE operator_sessions (
    id_hash          bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    operator_id      bigint NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL,
    -- However active, a session ends by then.
    expires_at       timestamptz NOT NULL
);
CREATE INDEX operator_sessions_operator_idx ON operator_sessions (operator_id);
