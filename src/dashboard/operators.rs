//! Operators: the people who log in to the dashboard, each with a role
//! (admin, analyst, viewer) and an argon2id password. Creating one, and
//! checking a login — with the account locked for a while after too many
//! wrong passwords in a row.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{Acquire, PgConnection};

use super::totp;
use crate::audit;
use crate::config::Secret;
use crate::domain::{Actor, DomainError, DomainResult, optional_text};
use crate::registry::model::EmailAddress;

/// What an operator may do. Each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees everything, changes nothing.
    Viewer,
    /// Runs the response: registry, campaigns, notifications, escalations.
    Analyst,
    /// Also manages operators and API tokens.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "analyst" => Some(Role::Analyst),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A logged-in operator, as pages know them.
#[derive(Debug, Clone)]
pub struct Operator {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
}

impl Operator {
    pub fn actor(&self) -> Actor {
        Actor::Operator {
            id: self.id,
            email: self.email.clone(),
        }
    }

    /// The name the dashboard shows.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.email)
    }
}

/// The shortest password an operator may have.
pub const MIN_PASSWORD_CHARS: usize = 12;

fn hash_password(password: &str) -> DomainResult<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("hashing a password: {e}")))
}

/// Adds an operator.
pub async fn create(
    conn: &mut PgConnection,
    actor: &Actor,
    email: &str,
    name: Option<&str>,
    role: Role,
    password: &str,
) -> DomainResult<i64> {
    let email = EmailAddress::parse(email).map_err(|e| DomainError::invalid("email", e))?;
    let name = optional_text("name", name, 200)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(DomainError::invalid(
            "password",
            format!("at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    // Tens of milliseconds of CPU: off the request tasks' threads.
    let to_hash = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&to_hash))
        .await
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("hashing a password: {e}")))??;
    let mut tx = conn.begin().await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO operators (email, name, role, password_hash) VALUES (lower($1), $2, $3, $4)
         ON CONFLICT (email) DO NOTHING RETURNING id",
    )
    .bind(email.as_str())
    .bind(&name)
    .bind(role.as_str())
    .bind(hash)
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(|| {
        DomainError::conflict(format!("an operator {} exists already", email.masked()))
    })?;
    audit::commit(
        tx,
        actor,
        "operator.create",
        &format!("operator:{id}"),
        serde_json::json!({ "role": role.as_str() }),
    )
    .await?;
    Ok(id)
}

/// How a login attempt ended.
#[derive(Debug)]
pub enum Login {
    Accepted(Operator),
    /// Unknown address or wrong password (the two are not told apart).
    Refused,
    /// Too many wrong passwords: no login until then, whatever the
    /// password.
    Locked {
        until: DateTime<Utc>,
    },
}

/// The limits of [`check_login`].
pub struct Lockout {
    pub max_failures: u32,
    pub lock_for: Duration,
}

/// An operator's row, as a login reads it.
#[derive(sqlx::FromRow)]
struct Account {
    id: i64,
    email: String,
    name: Option<String>,
    role: String,
    password_hash: String,
    failed_logins: i32,
    locked_until: Option<DateTime<Utc>>,
}

/// Checks a login (password, then the TOTP code of those who have the
/// second factor) and records its outcome (failures in a row, lock, last
/// login), in one transaction. An unknown address costs a hash check too,
/// so that timing does not tell which addresses exist.
pub async fn check_login(
    conn: &mut PgConnection,
    key: &Secret,
    email: &str,
    password: &str,
    code: &str,
    lockout: &Lockout,
    now: DateTime<Utc>,
) -> DomainResult<Login> {
    let mut tx = conn.begin().await?;
    let row: Option<Account> = sqlx::query_as(
        "SELECT id, email, name, role, password_hash, failed_logins, locked_until
               FROM operators WHERE email = lower($1) AND disabled_at IS NULL FOR UPDATE",
    )
    .bind(email.trim())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(Account {
        id,
        email,
        name,
        role,
        password_hash: hash,
        failed_logins: failures,
        locked_until,
    }) = row
    else {
        verified(DUMMY_HASH.clone(), password).await?;
        return Ok(Login::Refused);
    };
    if let Some(until) = locked_until.filter(|until| *until > now) {
        return Ok(Login::Locked { until });
    }
    let mut good = verified(hash, password).await?;
    if good {
        // The second factor, for those who turned it on; a wrong code
        // counts as a wrong password, and the two are not told apart.
        let second = totp::Second::read(&mut tx, id).await?;
        if second.required() {
            good = second.check_and_spend(&mut tx, key, code, now).await?;
        }
    }
    if !good {
        let failures = failures + 1;
        let locked_until =
            (failures >= lockout.max_failures as i32).then(|| now + lockout.lock_for);
        sqlx::query(
            "UPDATE operators SET failed_logins = CASE WHEN $3::timestamptz IS NULL THEN $2 ELSE 0 END,
                    locked_until = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(failures)
        .bind(locked_until)
        .execute(&mut *tx)
        .await?;
        audit::commit(
            tx,
            &Actor::Operator {
                id,
                email: email.clone(),
            },
            "operator.login_failed",
            &format!("operator:{id}"),
            serde_json::json!({ "locked": locked_until.is_some() }),
        )
        .await?;
        return Ok(match locked_until {
            Some(until) => Login::Locked { until },
            None => Login::Refused,
        });
    }
    sqlx::query(
        "UPDATE operators SET failed_logins = 0, locked_until = NULL, last_login_at = $2 WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let role = Role::parse(&role)
        .ok_or_else(|| DomainError::Internal(anyhow::anyhow!("operator {id} has role {role:?}")))?;
    Ok(Login::Accepted(Operator {
        id,
        email,
        name,
        role,
    }))
}

/// A hash of nothing anyone knows, checked for unknown addresses (made
/// with the same parameters as every real one, so it costs the same).
static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("no operator has this password").unwrap_or_default());

/// [`verify`] on a blocking thread: an argon2 check is tens of
/// milliseconds of CPU, which must not stall the request tasks sharing a
/// runtime thread.
async fn verified(hash: String, password: &str) -> DomainResult<bool> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || verify(&hash, &password))
        .await
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("checking a password: {e}")))
}

fn verify(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Changes an operator's role, audited with the role before and after.
pub async fn set_role(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    role: Role,
) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    let before = audit::snapshot(&mut tx, "operators", id)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("operator {id}")))?;
    let after = sqlx::query_scalar::<_, serde_json::Value>(
        "UPDATE operators t SET role = $2 WHERE id = $1 RETURNING to_jsonb(t)",
    )
    .bind(id)
    .bind(role.as_str())
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "operator.role",
        &format!("operator:{id}"),
        audit::changes(Some(&before), Some(&after)),
    )
    .await?;
    Ok(())
}

/// Disables an operator (their sessions end at once) or enables them
/// again; audited with the change. Disabling twice keeps the first time.
pub async fn set_disabled(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    disabled: bool,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    let before = audit::snapshot(&mut tx, "operators", id)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("operator {id}")))?;
    let after = sqlx::query_scalar::<_, serde_json::Value>(
        "UPDATE operators t SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, $3) END,
                failed_logins = 0, locked_until = NULL
          WHERE id = $1 RETURNING to_jsonb(t)",
    )
    .bind(id)
    .bind(disabled)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    if disabled {
        sqlx::query("DELETE FROM operator_sessions WHERE operator_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    audit::commit(
        tx,
        actor,
        if disabled {
            "operator.disable"
        } else {
            "operator.enable"
        },
        &format!("operator:{id}"),
        audit::changes(Some(&before), Some(&after)),
    )
    .await?;
    Ok(())
}

/// Sets a new password for an operator (at least [`MIN_PASSWORD_CHARS`]),
/// lifts a lockout and ends their sessions. The audit records that it
/// happened, never the password or its hash.
pub async fn reset_password(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    password: &str,
) -> DomainResult<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(DomainError::invalid(
            "password",
            format!("at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    let to_hash = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&to_hash))
        .await
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("hashing a password: {e}")))??;
    let mut tx = conn.begin().await?;
    let before = audit::snapshot(&mut tx, "operators", id)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("operator {id}")))?;
    let after = sqlx::query_scalar::<_, serde_json::Value>(
        "UPDATE operators t SET password_hash = $2, failed_logins = 0, locked_until = NULL
          WHERE id = $1 RETURNING to_jsonb(t)",
    )
    .bind(id)
    .bind(hash)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM operator_sessions WHERE operator_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let mut detail = audit::changes(Some(&before), Some(&after));
    if let Some(map) = detail.as_object_mut() {
        map.insert("password".into(), serde_json::json!("reset"));
    }
    audit::commit(
        tx,
        actor,
        "operator.password_reset",
        &format!("operator:{id}"),
        detail,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify(&hash, "correct horse battery"));
        assert!(!verify(&hash, "correct horse batterY"));
        assert!(!verify(&DUMMY_HASH, "correct horse battery"));
        assert!(
            PasswordHash::new(&DUMMY_HASH).is_ok(),
            "the dummy hash parses, so it costs a check"
        );
    }

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Admin > Role::Analyst && Role::Analyst > Role::Viewer);
        assert_eq!(Role::parse("analyst"), Some(Role::Analyst));
        assert_eq!(Role::parse("root"), None);
    }
}
