//! The example campaign Varsel ships (Exchange ProxyLogon, March 2021),
//! kept as a TOML file in the repository and compiled into the binary, and
//! the operation that stores it: `varsel campaign seed proxylogon`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::{Connection, PgConnection};

use super::model::{NewCampaign, NewUpdate};
use super::store;
use crate::audit;
use crate::domain::{Actor, DomainError, DomainResult};

const PROXYLOGON: &str = include_str!("seed/proxylogon-2021.toml");

/// The seed campaigns there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SeedName {
    /// Microsoft Exchange ProxyLogon, March 2021.
    Proxylogon,
}

/// A seed file: a campaign as the API takes it, and its dated update.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedCampaign {
    pub campaign: NewCampaign,
    pub update: SeedUpdate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUpdate {
    /// When it was posted in the story the seed tells.
    pub posted_at: DateTime<Utc>,
    pub body_nb: String,
    pub body_en: String,
}

impl SeedName {
    /// The seed's content, as shipped.
    pub fn content(self) -> DomainResult<SeedCampaign> {
        let text = match self {
            SeedName::Proxylogon => PROXYLOGON,
        };
        toml::from_str(text).map_err(|e| {
            DomainError::Internal(anyhow::anyhow!("the {self:?} seed does not parse: {e}"))
        })
    }
}

/// Stores the ProxyLogon seed campaign: [`seed_campaign`] of
/// [`SeedName::Proxylogon`].
pub async fn seed(
    conn: &mut PgConnection,
    actor: &Actor,
    now: DateTime<Utc>,
    with_update: bool,
) -> DomainResult<i64> {
    seed_campaign(conn, actor, SeedName::Proxylogon, now, with_update).await
}

/// Stores a seed campaign as a draft and returns its id; with
/// `with_update`, activates it at `now` and posts its dated update (with
/// the date the story gives it, as the recipients of 2021 saw it). All in
/// one transaction. When a campaign with the seed's slug exists, returns
/// that one unchanged.
pub async fn seed_campaign(
    conn: &mut PgConnection,
    actor: &Actor,
    name: SeedName,
    now: DateTime<Utc>,
    with_update: bool,
) -> DomainResult<i64> {
    let content = name.content()?;
    let slug = &content.campaign.slug;
    let mut tx = conn.begin().await?;
    if let Some(existing) = store::find_by_slug(&mut tx, slug).await? {
        return Ok(existing.id);
    }
    // The operations below each run in a savepoint of this transaction.
    let campaign = match store::create(&mut tx, actor, &content.campaign).await {
        Ok(c) => c,
        // Seeded meanwhile by someone else: theirs is the seed.
        Err(DomainError::Conflict {
            field: Some(field), ..
        }) if field == "slug" => {
            return match store::find_by_slug(&mut tx, slug).await? {
                Some(existing) => Ok(existing.id),
                None => Err(DomainError::conflict(format!(
                    "campaign {slug} was being seeded concurrently; try again"
                ))),
            };
        }
        Err(e) => return Err(e),
    };
    if with_update {
        store::activate(&mut tx, actor, campaign.id, now).await?;
        let update = NewUpdate {
            body_nb: content.update.body_nb,
            body_en: content.update.body_en,
        };
        let posted = store::insert_update(
            &mut tx,
            actor,
            campaign.id,
            &update,
            content.update.posted_at,
        )
        .await?;
        audit::record(
            &mut tx,
            actor,
            "campaign.post_update",
            &format!("campaign:{}", campaign.id),
            serde_json::json!({ "update_id": posted.id, "posted_at": posted.posted_at, "seed": true }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(campaign.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxylogon_seed_parses_with_both_languages() {
        let seed = SeedName::Proxylogon.content().unwrap();
        let c = &seed.campaign;
        assert_eq!(c.slug, "exchange-proxylogon-2021-03");
        assert_eq!(c.tlp, super::super::model::Tlp::Amber);
        assert_eq!(c.reminder_days, [3, 7]);
        assert!(c.checks.iter().any(|x| x == "scan_exchange"));
        assert_eq!(c.cves.len(), 4);
        for text in [&c.nb, &c.en] {
            assert!(text.what_to_do.starts_with("1. "), "{}", text.what_to_do);
            assert!(text.what_to_do.contains("\n2. "), "{}", text.what_to_do);
            assert!(text.what_to_do.contains("**"), "{}", text.what_to_do);
            assert!(text.how_to_check.contains("Test-ProxyLogon.ps1"));
            assert!(text.references.contains("Test-ProxyLogon.ps1"));
        }
        assert!(c.nb.title.starts_with("Sårbare Microsoft Exchange-servere"));
        assert_eq!(
            seed.update.posted_at.to_rfc3339(),
            "2021-03-08T20:30:00+00:00"
        );
        assert!(
            seed.update
                .body_nb
                .starts_with("**Oppdatering 08.03.2021:**")
        );
        assert!(seed.update.body_en.starts_with("**Update 8 March 2021:**"));
    }
}
