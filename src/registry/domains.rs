//! Domains an organisation holds (for matching scanner hostnames and for
//! people reading the registry): reading, adding and removing them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use super::organisations::ensure_exists;
use crate::audit;
use crate::domain::{Actor, DomainError, DomainResult};

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Domain {
    pub id: i64,
    pub organisation_id: i64,
    pub domain: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    #[schema(format = "domain-name", example = "eksempel.kommune.no")]
    pub domain: String,
}

impl crate::http::BodyShape for NewDomain {}

/// Lower-cased, without a trailing dot; labels of letters, digits and `-`.
pub fn parse_domain(input: &str) -> Result<String, String> {
    let d = input.trim().trim_end_matches('.').to_lowercase();
    let ok = d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if ok {
        Ok(d)
    } else {
        Err(format!("{input:?} is not a domain name"))
    }
}

pub async fn list(conn: &mut PgConnection, organisation_id: i64) -> DomainResult<Vec<Domain>> {
    ensure_exists(conn, organisation_id).await?;
    Ok(sqlx::query_as(
        "SELECT id, organisation_id, domain, created_at FROM domains WHERE organisation_id = $1 ORDER BY domain",
    )
    .bind(organisation_id)
    .fetch_all(conn)
    .await?)
}

pub async fn create(
    conn: &mut PgConnection,
    actor: &Actor,
    organisation_id: i64,
    new: &NewDomain,
) -> DomainResult<Domain> {
    let domain = parse_domain(&new.domain).map_err(|e| DomainError::invalid("domain", e))?;
    let mut tx = conn.begin().await?;
    ensure_exists(&mut tx, organisation_id).await?;
    let row: Domain = sqlx::query_as(
        "INSERT INTO domains (organisation_id, domain) VALUES ($1, $2)
         RETURNING id, organisation_id, domain, created_at",
    )
    .bind(organisation_id)
    .bind(&domain)
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "domain.create",
        &format!("domain:{}", row.id),
        serde_json::json!({ "organisation_id": organisation_id, "domain": domain }),
    )
    .await?;
    Ok(row)
}

pub async fn delete(conn: &mut PgConnection, actor: &Actor, id: i64) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    let n = sqlx::query("DELETE FROM domains WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(DomainError::not_found(format!("domain {id}")));
    }
    audit::commit(
        tx,
        actor,
        "domain.delete",
        &format!("domain:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn domains() {
        assert_eq!(super::parse_domain("Example.NO.").unwrap(), "example.no");
        assert!(super::parse_domain("nodot").is_err());
        assert!(super::parse_domain("-a.no").is_err());
    }
}
