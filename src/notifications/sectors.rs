//! Sectors and their response teams: a sector (the `sector` of its
//! organisations) may name an organisation of the registry, such as the
//! municipal or health sector CERT, that gets copies of the sector's
//! notifications when a campaign copies to sector teams.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use crate::audit;
use crate::domain::{Actor, DomainResult, required_text};
use crate::registry::organisations::ensure_exists;

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Sector {
    pub name: String,
    /// The organisation copied on the sector's notifications.
    pub response_team_id: Option<i64>,
    /// Organisations in the registry with this sector.
    pub organisations: i64,
    pub updated_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SectorTeam {
    /// The response team's organisation id; `null` to name none.
    pub response_team_id: Option<i64>,
}

impl crate::http::BodyShape for SectorTeam {}

/// Every sector that organisations use or that names a team.
pub async fn list(conn: &mut PgConnection) -> DomainResult<Vec<Sector>> {
    Ok(sqlx::query_as(
        "SELECT n.name, s.response_team_id,
                (SELECT count(*) FROM organisations o WHERE o.sector = n.name) AS organisations,
                s.updated_at
           FROM (SELECT sector AS name FROM organisations WHERE sector IS NOT NULL
                 UNION SELECT name FROM sectors) n
           LEFT JOIN sectors s ON s.name = n.name
          ORDER BY n.name",
    )
    .fetch_all(conn)
    .await?)
}

/// Names (or, with `None`, un-names) the sector's response team.
pub async fn set_team(
    conn: &mut PgConnection,
    actor: &Actor,
    name: &str,
    team: Option<i64>,
    now: DateTime<Utc>,
) -> DomainResult<Sector> {
    let name = required_text("name", name, 100)?;
    let mut tx = conn.begin().await?;
    if let Some(team) = team {
        ensure_exists(&mut tx, team).await?;
    }
    sqlx::query(
        "INSERT INTO sectors (name, response_team_id, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET response_team_id = $2, updated_at = $3",
    )
    .bind(&name)
    .bind(team)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let sector: Sector = sqlx::query_as(
        "SELECT s.name, s.response_team_id,
                (SELECT count(*) FROM organisations o WHERE o.sector = s.name) AS organisations,
                s.updated_at
           FROM sectors s WHERE s.name = $1",
    )
    .bind(&name)
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "sector.set_team",
        &format!("sector:{name}"),
        serde_json::json!({ "response_team_id": team }),
    )
    .await?;
    Ok(sector)
}
