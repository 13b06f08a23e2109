//! The optional second factor: six-digit TOTP codes (RFC 6238, SHA-1,
//! 30-second steps, one step of clock skew either way) from an
//! authenticator app. Setting it up, checking a code at login — each code
//! good once — and turning it off.
//!
//! The secret must be readable to check a code, so it cannot be stored as
//! a hash. It is sealed with the server's secret instead: a random nonce,
//! then the secret XOR an HMAC-SHA256 keystream of that nonce. No crate of
//! the tree does authenticated encryption, and none is needed: nothing
//! but this module writes the column, and a tampered secret only makes
//! codes fail.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use sqlx::{Acquire, PgConnection};
use totp_rs::{Algorithm, TOTP};

use crate::audit;
use crate::config::Secret;
use crate::domain::{Actor, DomainError, DomainResult};

/// Seconds per code.
const STEP: u64 = 30;
/// 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
const NONCE_BYTES: usize = 16;

fn keystream(key: &Secret, nonce: &[u8]) -> DomainResult<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose().as_bytes())
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("TOTP key: {e}")))?;
    mac.update(b"varsel-totp-secret");
    mac.update(nonce);
    Ok(mac.finalize().into_bytes().into())
}

fn seal(key: &Secret, secret: &[u8]) -> DomainResult<Vec<u8>> {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let stream = keystream(key, &nonce)?;
    let mut sealed = nonce.to_vec();
    sealed.extend(secret.iter().zip(stream).map(|(s, k)| s ^ k));
    Ok(sealed)
}

fn open(key: &Secret, sealed: &[u8]) -> DomainResult<Vec<u8>> {
    if sealed.len() != NONCE_BYTES + SECRET_BYTES {
        return Err(DomainError::Internal(anyhow::anyhow!(
            "a sealed TOTP secret of {} bytes",
            sealed.len()
        )));
    }
    let (nonce, body) = sealed.split_at(NONCE_BYTES);
    let stream = keystream(key, nonce)?;
    Ok(body.iter().zip(stream).map(|(s, k)| s ^ k).collect())
}

fn totp(secret: Vec<u8>, account: &str) -> DomainResult<TOTP> {
    // An otpauth account name may not hold a colon; e-mail addresses don't.
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        secret,
        Some("Varsel".to_owned()),
        account.replace(':', "_"),
    )
    .map_err(|e| DomainError::Internal(anyhow::anyhow!("TOTP: {e}")))
}

/// The time step whose code `code` is, within one step of `now`.
pub(crate) fn matching_step(secret: &[u8], code: &str, now: DateTime<Utc>) -> Option<i64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret.to_vec(), "check").ok()?;
    let current = u64::try_from(now.timestamp()).ok()? / STEP;
    // Each candidate is compared in full, so the time taken does not tell
    // how many digits were right.
    [current.saturating_sub(1), current, current + 1]
        .into_iter()
        .rev()
        .find(|step| {
            let expected = totp.generate(step * STEP);
            expected
                .bytes()
                .zip(code.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
        })
        .and_then(|step| i64::try_from(step).ok())
}

/// What the setup page shows: the secret in base32 for typing in, and the
/// otpauth URL an app reads.
pub struct Setup {
    pub secret_base32: String,
    pub url: String,
}

/// Starts setting the factor up: a new secret, kept pending until a code
/// from it confirms it (so a half-done setup locks no one out).
pub async fn begin(
    conn: &mut PgConnection,
    key: &Secret,
    operator_id: i64,
    email: &str,
) -> DomainResult<Setup> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    sqlx::query("UPDATE operators SET totp_pending_secret = $2 WHERE id = $1")
        .bind(operator_id)
        .bind(seal(key, &secret)?)
        .execute(conn)
        .await?;
    setup_of(secret, email)
}

fn setup_of(secret: Vec<u8>, email: &str) -> DomainResult<Setup> {
    let totp = totp(secret, email)?;
    Ok(Setup {
        secret_base32: totp.get_secret_base32(),
        url: totp.get_url(),
    })
}

/// The pending setup again (to show it once more after a wrong code).
pub async fn pending(
    conn: &mut PgConnection,
    key: &Secret,
    operator_id: i64,
    email: &str,
) -> DomainResult<Option<Setup>> {
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT totp_pending_secret FROM operators WHERE id = $1")
            .bind(operator_id)
            .fetch_one(conn)
            .await?;
    sealed
        .map(|sealed| setup_of(open(key, &sealed)?, email))
        .transpose()
}

/// Whether the operator has the factor turned on.
pub async fn enabled(conn: &mut PgConnection, operator_id: i64) -> DomainResult<bool> {
    Ok(
        sqlx::query_scalar("SELECT totp_secret IS NOT NULL FROM operators WHERE id = $1")
            .bind(operator_id)
            .fetch_one(conn)
            .await?,
    )
}

/// Turns the factor on, if `code` comes from the pending secret.
pub async fn confirm(
    conn: &mut PgConnection,
    key: &Secret,
    actor: &Actor,
    operator_id: i64,
    code: &str,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    let sealed: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT totp_pending_secret FROM operators WHERE id = $1 FOR UPDATE")
            .bind(operator_id)
            .fetch_one(&mut *tx)
            .await?;
    let sealed = sealed.ok_or_else(|| DomainError::conflict("no setup is under way"))?;
    let step = matching_step(&open(key, &sealed)?, code, now)
        .ok_or_else(|| DomainError::invalid("code", "is not the app's current six-digit code"))?;
    sqlx::query(
        "UPDATE operators SET totp_secret = totp_pending_secret, totp_pending_secret = NULL,
                totp_last_step = $2 WHERE id = $1",
    )
    .bind(operator_id)
    .bind(step)
    .execute(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "operator.totp_enabled",
        &format!("operator:{operator_id}"),
        serde_json::json!({ "before": { "totp": false }, "after": { "totp": true } }),
    )
    .await?;
    Ok(())
}

/// Turns the factor off; takes a current code, so a session left open is
/// not enough.
pub async fn disable(
    conn: &mut PgConnection,
    key: &Secret,
    actor: &Actor,
    operator_id: i64,
    code: &str,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    let check = Second::read(&mut tx, operator_id).await?;
    if check.accepted_step(key, code, now)?.is_none() {
        return Err(DomainError::invalid(
            "code",
            "is not the app's current six-digit code",
        ));
    }
    sqlx::query(
        "UPDATE operators SET totp_secret = NULL, totp_pending_secret = NULL, totp_last_step = NULL
          WHERE id = $1",
    )
    .bind(operator_id)
    .execute(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "operator.totp_disabled",
        &format!("operator:{operator_id}"),
        serde_json::json!({ "before": { "totp": true }, "after": { "totp": false } }),
    )
    .await?;
    Ok(())
}

/// An operator's second factor as a login checks it, read in the login's
/// transaction (the row is locked by then).
pub(crate) struct Second {
    operator_id: i64,
    sealed: Option<Vec<u8>>,
    last_step: Option<i64>,
}

impl Second {
    pub(crate) async fn read(conn: &mut PgConnection, operator_id: i64) -> DomainResult<Self> {
        let (sealed, last_step): (Option<Vec<u8>>, Option<i64>) = sqlx::query_as(
            "SELECT totp_secret, totp_last_step FROM operators WHERE id = $1 FOR UPDATE",
        )
        .bind(operator_id)
        .fetch_one(&mut *conn)
        .await?;
        Ok(Self {
            operator_id,
            sealed,
            last_step,
        })
    }

    pub(crate) fn required(&self) -> bool {
        self.sealed.is_some()
    }

    /// The step of `code` if it is good: from this secret, near `now`, and
    /// later than the last code accepted (a code seen over a shoulder is
    /// spent).
    fn accepted_step(
        &self,
        key: &Secret,
        code: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<Option<i64>> {
        let Some(sealed) = &self.sealed else {
            return Ok(None);
        };
        let step = matching_step(&open(key, sealed)?, code, now);
        Ok(step.filter(|step| self.last_step.is_none_or(|last| *step > last)))
    }

    /// Checks `code` and, when good, spends it.
    pub(crate) async fn check_and_spend(
        &self,
        conn: &mut PgConnection,
        key: &Secret,
        code: &str,
        now: DateTime<Utc>,
    ) -> DomainResult<bool> {
        let Some(step) = self.accepted_step(key, code, now)? else {
            return Ok(false);
        };
        sqlx::query("UPDATE operators SET totp_last_step = $2 WHERE id = $1")
            .bind(self.operator_id)
            .bind(step)
            .execute(conn)
            .await?;
        Ok(true)
    }
}

/// The code an app shows at `at`, for tests.
pub fn code_at(secret_base32: &str, at: DateTime<Utc>) -> Option<String> {
    let secret = totp_rs::Secret::Encoded(secret_base32.to_owned())
        .to_bytes()
        .ok()?;
    let totp = totp(secret, "test").ok()?;
    Some(totp.generate(u64::try_from(at.timestamp()).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_with_its_key_only() {
        let key = Secret::new("k1");
        let secret = [7u8; SECRET_BYTES];
        let sealed = seal(&key, &secret).unwrap();
        assert_eq!(sealed.len(), NONCE_BYTES + SECRET_BYTES);
        assert!(!sealed.windows(SECRET_BYTES).any(|w| w == secret));
        assert_eq!(open(&key, &sealed).unwrap(), secret);
        assert_ne!(open(&Secret::new("k2"), &sealed).unwrap(), secret);
        assert_ne!(
            seal(&key, &secret).unwrap(),
            sealed,
            "a new nonce each time"
        );
    }

    #[test]
    fn codes_match_within_one_step_either_way() {
        let secret = vec![42u8; SECRET_BYTES];
        let base32 = setup_of(secret.clone(), "a@b.no").unwrap().secret_base32;
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let code = code_at(&base32, now).unwrap();
        let step = matching_step(&secret, &code, now).unwrap();
        assert_eq!(step, 1_800_000_000 / 30);
        assert!(matching_step(&secret, &code, now + chrono::Duration::seconds(30)).is_some());
        assert!(matching_step(&secret, &code, now + chrono::Duration::seconds(90)).is_none());
        assert!(matching_step(&secret, "12345", now).is_none());
        assert!(matching_step(&secret, "abcdef", now).is_none());
    }
}
