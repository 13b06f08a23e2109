//! Who gets a notification's mail: the organisation's enabled contacts
//! whose address has not bounced, by role — the security contacts, or if
//! it has none the technical ones, or else the abuse contact the registry
//! gave — each in the contact's language. The sector's response team, when
//! the sector names one and the campaign copies to it, gets a copy.

use sqlx::PgConnection;

use super::texts::MailLanguage;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub contact_id: i64,
    pub email: String,
    pub name: Option<String>,
    pub language: MailLanguage,
}

/// The recipients of an organisation's mail; empty when it has no usable
/// contact.
pub async fn of_organisation(
    conn: &mut PgConnection,
    organisation_id: i64,
) -> Result<Vec<Recipient>, sqlx::Error> {
    let rows: Vec<(i64, String, Option<String>, String, i32)> = sqlx::query_as(
        "SELECT id, email, name, language,
                CASE role WHEN 'security' THEN 1 WHEN 'technical' THEN 2 ELSE 3 END AS rank
           FROM contacts
          WHERE organisation_id = $1 AND enabled AND last_bounce_at IS NULL
            AND role IN ('security', 'technical', 'abuse')
          ORDER BY rank, id",
    )
    .bind(organisation_id)
    .fetch_all(conn)
    .await?;
    let best = rows.first().map(|r| r.4);
    Ok(rows
        .into_iter()
        .filter(|r| Some(r.4) == best)
        .map(|(contact_id, email, name, language, _)| Recipient {
            contact_id,
            email,
            name,
            language: MailLanguage::parse(&language),
        })
        .collect())
}

/// The sector response team that gets copies of the organisation's mail:
/// its id and recipients, when its sector names one (never itself).
pub async fn sector_team(
    conn: &mut PgConnection,
    organisation_id: i64,
) -> Result<Option<(i64, Vec<Recipient>)>, sqlx::Error> {
    let team: Option<i64> = sqlx::query_scalar(
        "SELECT s.response_team_id FROM organisations o JOIN sectors s ON s.name = o.sector
          WHERE o.id = $1 AND s.response_team_id IS NOT NULL AND s.response_team_id <> o.id",
    )
    .bind(organisation_id)
    .fetch_optional(&mut *conn)
    .await?;
    match team {
        Some(team) => Ok(Some((team, of_organisation(conn, team).await?))),
        None => Ok(None),
    }
}
