//! Private advisory links. Every mail carries a link of its own; its token
//! is an HMAC-SHA256, under the service's link secret (configuration, never
//! the database), of 32 random bytes stored with the link. The database
//! keeps those bytes and the token's SHA-256 only, so neither a copy of the
//! database nor the stored mail (which holds a placeholder where the token
//! goes) reveals a working link. The outbox puts the token into the mail at
//! the moment it sends it ([`reveal`]), the same token on every attempt.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::config::Secret;

/// Where a mail's token goes until the outbox sends it.
pub const PLACEHOLDER: &str = "@@VARSEL-LINK-TOKEN@@";

/// A token in the clear: 256 bits, as 64 hex digits.
pub struct LinkToken(String);

impl LinkToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn token_of(secret: &Secret, salt: &[u8]) -> LinkToken {
    // A key of any length is accepted, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"varsel advisory link\0");
    mac.update(salt);
    LinkToken(hex::encode(mac.finalize().into_bytes()))
}

/// What is stored of a token: its SHA-256.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Makes a new link for the notification, valid until `expires_at`, and
/// moves the notification's expiry to the latest of its links. Returns the
/// link's id, which the mail's delivery row names.
pub async fn issue(
    conn: &mut PgConnection,
    secret: &Secret,
    notification_id: i64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    let mut salt = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let token = token_of(secret, &salt);
    let id = sqlx::query_scalar(
        "INSERT INTO notification_tokens (notification_id, salt, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(notification_id)
    .bind(&salt[..])
    .bind(hash(token.expose()))
    .bind(now)
    .bind(expires_at)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE notifications SET link_expires_at = greatest(link_expires_at, $2) WHERE id = $1",
    )
    .bind(notification_id)
    .bind(expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(id)
}

/// Forgets a link that never went out (its mail was queued by someone
/// else meanwhile).
pub async fn discard(conn: &mut PgConnection, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM notification_tokens WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The token of link `id`, for the outbox to put into the mail as it sends
/// it.
pub async fn reveal(
    conn: &mut PgConnection,
    secret: &Secret,
    id: i64,
) -> Result<LinkToken, sqlx::Error> {
    let salt: Vec<u8> = sqlx::query_scalar("SELECT salt FROM notification_tokens WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(token_of(secret, &salt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_256_bits_fixed_by_secret_and_salt() {
        let secret = Secret::new("s3cret");
        let a = token_of(&secret, b"salt one");
        assert_eq!(a.expose().len(), 64);
        assert_eq!(a.expose(), token_of(&secret, b"salt one").expose());
        assert_ne!(a.expose(), token_of(&secret, b"salt two").expose());
        assert_ne!(
            a.expose(),
            token_of(&Secret::new("other"), b"salt one").expose()
        );
        assert_ne!(hash(a.expose()), hash(token_of(&secret, b"x").expose()));
    }
}
