-- The dashboard's optional second factor. The TOTP secret must be readable
-- to check a code, so it cannot be a hash: it is kept sealed with the
-- server's secret (a random nonce, then the secret XOR an HMAC keystream),
-- so a copy of the database alone does not give anyone the codes.
ALTER TABLE operators
    ADD COLUMN totp_secret         bytea,
    -- Set while an operator is setting the factor up, until a first code
    -- confirms it.
    ADD COLUMN totp_pending_secret bytea,
    -- The time step of the last code accepted: a code is good once.
    ADD COLUMN totp_last_step      bigint;
