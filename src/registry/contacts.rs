//! Contacts of an organisation: who gets the advisories, in which language.
//! Reading, adding, changing and removing them, each write one transaction
//! with its audit event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use super::model::{ContactRole, EmailAddress, Language, Source};
use super::organisations::ensure_exists;
use crate::audit;
use crate::domain::{Actor, DomainError, DomainResult, optional_text};
use crate::http::nullable;

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Contact {
    pub id: i64,
    pub organisation_id: i64,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub language: String,
    pub enabled: bool,
    /// `manual`, `registry` (imported) or `organisation` (reported by it).
    pub provenance: String,
    pub channel: String,
    pub last_bounce_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, organisation_id, email, name, role, language, enabled, provenance, channel, \
                       last_bounce_at, last_failure, created_at, updated_at";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    #[schema(value_type = String, format = "email-address", example = "security@example.no")]
    pub email: EmailAddress,
    #[schema(max_length = 200, pattern = "^[^\\u0000]*$")]
    pub name: Option<String>,
    pub role: ContactRole,
    pub language: Language,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Default `manual`.
    pub provenance: Option<Source>,
}

impl crate::http::BodyShape for NewContact {}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    #[schema(value_type = Option<String>, format = "email-address")]
    pub email: Option<EmailAddress>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 200, pattern = "^[^\\u0000]*$")]
    pub name: Option<Option<String>>,
    pub role: Option<ContactRole>,
    pub language: Option<Language>,
    pub enabled: Option<bool>,
}

impl crate::http::BodyShape for ContactPatch {}

pub async fn list(conn: &mut PgConnection, organisation_id: i64) -> DomainResult<Vec<Contact>> {
    ensure_exists(conn, organisation_id).await?;
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM contacts WHERE organisation_id = $1 ORDER BY id"
    ))
    .bind(organisation_id)
    .fetch_all(conn)
    .await?)
}

pub async fn create(
    conn: &mut PgConnection,
    actor: &Actor,
    organisation_id: i64,
    new: &NewContact,
) -> DomainResult<Contact> {
    let name = optional_text("name", new.name.as_deref(), 200)?;
    let mut tx = conn.begin().await?;
    ensure_exists(&mut tx, organisation_id).await?;
    let contact: Contact = sqlx::query_as(&format!(
        "INSERT INTO contacts (organisation_id, email, name, role, language, enabled, provenance, channel)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'api') RETURNING {COLUMNS}"
    ))
    .bind(organisation_id)
    .bind(new.email.as_str())
    .bind(name)
    .bind(new.role.as_str())
    .bind(new.language.as_str())
    .bind(new.enabled)
    .bind(new.provenance.unwrap_or(Source::Manual).as_str())
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "contact.create",
        &format!("contact:{}", contact.id),
        serde_json::json!({ "organisation_id": organisation_id }),
    )
    .await?;
    Ok(contact)
}

pub async fn update(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    patch: &ContactPatch,
) -> DomainResult<Contact> {
    let name = patch
        .name
        .as_ref()
        .map(|n| optional_text("name", n.as_deref(), 200))
        .transpose()?;
    let mut tx = conn.begin().await?;
    let before = audit::snapshot(&mut tx, "contacts", id).await?;
    let contact: Contact = sqlx::query_as(&format!(
        "UPDATE contacts SET
            email = coalesce($2, email),
            name = CASE WHEN $3 THEN $4 ELSE name END,
            role = coalesce($5, role),
            language = coalesce($6, language),
            enabled = coalesce($7, enabled)
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(patch.email.as_ref().map(EmailAddress::as_str))
    .bind(name.is_some())
    .bind(name.flatten())
    .bind(patch.role.map(ContactRole::as_str))
    .bind(patch.language.map(Language::as_str))
    .bind(patch.enabled)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| DomainError::not_found(format!("contact {id}")))?;
    let after = audit::snapshot(&mut tx, "contacts", id).await?;
    audit::commit(
        tx,
        actor,
        "contact.update",
        &format!("contact:{id}"),
        audit::changes(before.as_ref(), after.as_ref()),
    )
    .await?;
    Ok(contact)
}

pub async fn delete(conn: &mut PgConnection, actor: &Actor, id: i64) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    let before = audit::snapshot(&mut tx, "contacts", id).await?;
    let n = sqlx::query("DELETE FROM contacts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(DomainError::not_found(format!("contact {id}")));
    }
    audit::commit(
        tx,
        actor,
        "contact.delete",
        &format!("contact:{id}"),
        audit::changes(before.as_ref(), None),
    )
    .await?;
    Ok(())
}
