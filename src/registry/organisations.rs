//! Organisations, the owners of networks: reading, registering, changing
//! and deleting them. Every write is one transaction with its audit event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use super::model::OrgNumber;
use crate::audit;
use crate::domain::{Actor, DomainError, DomainResult, optional_text, required_text};
use crate::http::nullable;

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Organisation {
    pub id: i64,
    /// External key, stable across re-imports (RIPE `ORG-…` handle or CSV `ref`).
    #[serde(rename = "ref")]
    #[sqlx(rename = "ref")]
    pub reference: String,
    pub name: String,
    pub org_number: Option<String>,
    pub sector: Option<String>,
    pub notes: Option<String>,
    /// `api` (entered by hand), `csv` or `ripe` (imported).
    pub channel: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, ref, name, org_number, sector, notes, channel, created_at, updated_at";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganisation {
    #[serde(rename = "ref")]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
        example = "ORG-EK1-RIPE"
    )]
    pub reference: String,
    #[schema(
        min_length = 1,
        max_length = 300,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
        example = "Eksempel kommune"
    )]
    pub name: String,
    /// Norwegian organisation number: 9 digits, the last a mod-11 check digit.
    #[schema(value_type = Option<String>, format = "no-org-number", example = "974760673")]
    pub org_number: Option<OrgNumber>,
    #[schema(max_length = 100, pattern = "^[^\\u0000]*$", example = "municipality")]
    pub sector: Option<String>,
    #[schema(max_length = 10000, pattern = "^[^\\u0000]*$")]
    pub notes: Option<String>,
}

impl crate::http::BodyShape for NewOrganisation {}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationPatch {
    #[schema(
        min_length = 1,
        max_length = 300,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = "no-org-number")]
    pub org_number: Option<Option<OrgNumber>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100, pattern = "^[^\\u0000]*$")]
    pub sector: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = "^[^\\u0000]*$")]
    pub notes: Option<Option<String>>,
}

impl crate::http::BodyShape for OrganisationPatch {}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganisationQuery {
    /// Only the organisation with this `ref`.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 10 000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// A page of organisations by id, after `after`; `limit + 1` rows, so the
/// caller learns whether more exist.
pub async fn list(
    conn: &mut PgConnection,
    reference: Option<&str>,
    after: i64,
    limit: usize,
) -> DomainResult<Vec<Organisation>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organisations
          WHERE id > $1 AND ($2::text IS NULL OR ref = $2)
          ORDER BY id LIMIT $3"
    ))
    .bind(after)
    .bind(reference)
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?)
}

pub async fn fetch(conn: &mut PgConnection, id: i64) -> DomainResult<Organisation> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organisations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| DomainError::not_found(format!("organisation {id}")))
}

/// Registers an organisation entered by hand.
pub async fn create(
    conn: &mut PgConnection,
    actor: &Actor,
    new: &NewOrganisation,
) -> DomainResult<Organisation> {
    let reference = required_text("ref", &new.reference, 100)?;
    let name = required_text("name", &new.name, 300)?;
    let sector = optional_text("sector", new.sector.as_deref(), 100)?;
    let notes = optional_text("notes", new.notes.as_deref(), 10_000)?;
    let mut tx = conn.begin().await?;
    let org: Organisation = sqlx::query_as(&format!(
        "INSERT INTO organisations (ref, name, org_number, sector, notes, channel)
         VALUES ($1, $2, $3, $4, $5, 'api') RETURNING {COLUMNS}"
    ))
    .bind(&reference)
    .bind(&name)
    .bind(new.org_number.as_ref().map(OrgNumber::as_str))
    .bind(&sector)
    .bind(&notes)
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "organisation.create",
        &format!("organisation:{}", org.id),
        serde_json::json!({ "ref": reference }),
    )
    .await?;
    Ok(org)
}

/// Changes an organisation's name, number, sector or notes (`ref` is its
/// key and cannot change).
pub async fn update(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    patch: &OrganisationPatch,
) -> DomainResult<Organisation> {
    let name = patch
        .name
        .as_deref()
        .map(|n| required_text("name", n, 300))
        .transpose()?;
    let sector = patch
        .sector
        .as_ref()
        .map(|s| optional_text("sector", s.as_deref(), 100))
        .transpose()?;
    let notes = patch
        .notes
        .as_ref()
        .map(|n| optional_text("notes", n.as_deref(), 10_000))
        .transpose()?;
    let mut tx = conn.begin().await?;
    let before = audit::snapshot(&mut tx, "organisations", id).await?;
    let org: Organisation = sqlx::query_as(&format!(
        "UPDATE organisations SET
            name = coalesce($2, name),
            org_number = CASE WHEN $3 THEN $4 ELSE org_number END,
            sector = CASE WHEN $5 THEN $6 ELSE sector END,
            notes = CASE WHEN $7 THEN $8 ELSE notes END
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&name)
    .bind(patch.org_number.is_some())
    .bind(
        patch
            .org_number
            .as_ref()
            .and_then(|n| n.as_ref())
            .map(OrgNumber::as_str),
    )
    .bind(sector.is_some())
    .bind(sector.flatten())
    .bind(notes.is_some())
    .bind(notes.flatten())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| DomainError::not_found(format!("organisation {id}")))?;
    let after = audit::snapshot(&mut tx, "organisations", id).await?;
    audit::commit(
        tx,
        actor,
        "organisation.update",
        &format!("organisation:{id}"),
        audit::changes(before.as_ref(), after.as_ref()),
    )
    .await?;
    Ok(org)
}

/// Deletes an organisation that has no networks, ASNs or findings (current
/// or historical); its contacts and domains go with it.
pub async fn delete(conn: &mut PgConnection, actor: &Actor, id: i64) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    // Findings have no foreign key (see the ingest migration), so ask.
    let has_findings: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM findings WHERE organisation_id = $1)")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if has_findings {
        return Err(DomainError::conflict("the organisation has findings"));
    }
    let before = audit::snapshot(&mut tx, "organisations", id).await?;
    let deleted = sqlx::query("DELETE FROM organisations WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(DomainError::not_found(format!("organisation {id}")));
    }
    audit::commit(
        tx,
        actor,
        "organisation.delete",
        &format!("organisation:{id}"),
        audit::changes(before.as_ref(), None),
    )
    .await?;
    Ok(())
}

/// `NotFound` unless the organisation exists; locks it against deletion
/// until the transaction ends.
pub async fn ensure_exists(conn: &mut PgConnection, id: i64) -> DomainResult<()> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM organisations WHERE id = $1 FOR KEY SHARE")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    found
        .map(|_| ())
        .ok_or_else(|| DomainError::not_found(format!("organisation {id}")))
}
