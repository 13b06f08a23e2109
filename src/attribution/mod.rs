//! Attribution: which organisation owned an address at a given time, and why.
//! Owns the in-memory prefix table ([`table`]), keeping it in step with the
//! registry in the database ([`Attributor`]), and the lookup API ([`routes`]).

pub mod routes;
pub mod table;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Serialize;
use sqlx::PgPool;

use crate::registry::model::Source;
use table::{AsnRow, Match, Micros, NetworkRow, PrefixTable};

/// Keeps this instance's [`PrefixTable`] current. Every registry write bumps
/// `registry_generation` in its own transaction; [`Attributor::current`]
/// compares that number with the cached table's and rebuilds when they
/// differ, so a change committed by any instance is seen by the next lookup
/// on every instance. A LISTEN task ([`crate::app`]) also refreshes eagerly.
pub struct Attributor {
    cached: RwLock<Arc<PrefixTable>>,
    reload: tokio::sync::Mutex<()>,
}

impl Default for Attributor {
    fn default() -> Self {
        Self::new()
    }
}

impl Attributor {
    pub fn new() -> Self {
        Self {
            cached: RwLock::new(Arc::new(PrefixTable::default())),
            reload: tokio::sync::Mutex::new(()),
        }
    }

    fn cached(&self) -> Arc<PrefixTable> {
        match self.cached.read() {
            Ok(guard) => guard.clone(),
            // A panic elsewhere while holding the lock cannot leave the Arc
            // half-written; the value is still good.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The table as of the registry's current generation.
    pub async fn current(&self, pool: &PgPool) -> anyhow::Result<Arc<PrefixTable>> {
        let generation: i64 = sqlx::query_scalar("SELECT generation FROM registry_generation")
            .fetch_one(pool)
            .await
            .context("reading the registry generation")?;
        let table = self.cached();
        if table.generation >= generation {
            return Ok(table);
        }
        let _one_at_a_time = self.reload.lock().await;
        let table = self.cached();
        if table.generation >= generation {
            return Ok(table);
        }
        let fresh = Arc::new(load(pool).await?);
        tracing::info!(
            generation = fresh.generation,
            networks = fresh.network_rows(),
            "attribution table rebuilt"
        );
        match self.cached.write() {
            Ok(mut guard) => *guard = fresh.clone(),
            Err(poisoned) => *poisoned.into_inner() = fresh.clone(),
        }
        Ok(fresh)
    }
}

/// Reads the whole registry (every network and ASN row, with history) in one
/// consistent snapshot and builds the table.
pub async fn load(pool: &PgPool) -> anyhow::Result<PrefixTable> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let generation: i64 = sqlx::query_scalar("SELECT generation FROM registry_generation")
        .fetch_one(&mut *tx)
        .await?;
    type Row = (
        i64,
        i64,
        String,
        IpNet,
        String,
        String,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let networks: Vec<Row> = sqlx::query_as(
        "SELECT n.id, n.organisation_id, o.ref, n.cidr, n.source, n.channel, n.valid_from, n.valid_to
           FROM networks n JOIN organisations o ON o.id = n.organisation_id",
    )
    .fetch_all(&mut *tx)
    .await?;
    type AsnDbRow = (
        i64,
        i64,
        String,
        i64,
        String,
        String,
        Option<DateTime<Utc>>,
        Option<DateTime<Utc>>,
    );
    let asn_rows: Vec<AsnDbRow> =
        sqlx::query_as(
            "SELECT a.id, a.organisation_id, o.ref, a.asn, a.source, a.channel, a.valid_from, a.valid_to
               FROM asns a JOIN organisations o ON o.id = a.organisation_id",
        )
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;

    // Organisation refs are shared between rows.
    let mut refs: std::collections::HashMap<i64, Arc<str>> = std::collections::HashMap::new();
    let mut intern = |id: i64, r: String| refs.entry(id).or_insert_with(|| Arc::from(r)).clone();
    let rows = networks
        .into_iter()
        .map(|(id, org, r, cidr, source, channel, from, to)| NetworkRow {
            network_id: id,
            organisation_id: org,
            organisation_ref: intern(org, r),
            cidr,
            source: Source::parse(&source).unwrap_or(Source::Registry),
            by_hand: channel == "api",
            valid_from: from.map(|t| t.timestamp_micros()),
            valid_to: to.map(|t| t.timestamp_micros()),
        })
        .collect();
    let asn_rows = asn_rows
        .into_iter()
        .filter_map(|(id, org, r, asn, source, channel, from, to)| {
            Some(AsnRow {
                asn_id: id,
                asn: u32::try_from(asn).ok()?,
                organisation_id: org,
                organisation_ref: intern(org, r),
                source: Source::parse(&source).unwrap_or(Source::Registry),
                by_hand: channel == "api",
                valid_from: from.map(|t| t.timestamp_micros()),
                valid_to: to.map(|t| t.timestamp_micros()),
            })
        })
        .collect();
    Ok(PrefixTable::new(generation, rows, asn_rows))
}

fn micros_to_time(m: Micros) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(m)
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct OrganisationRef {
    pub id: i64,
    #[serde(rename = "ref")]
    pub reference: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct MatchedNetwork {
    pub id: i64,
    #[schema(value_type = String, example = "198.18.4.0/23")]
    pub cidr: IpNet,
    pub source: Source,
    /// `null`: since the beginning of time.
    pub valid_from: Option<DateTime<Utc>>,
    /// `null`: still valid.
    pub valid_to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct MatchedAsn {
    pub id: i64,
    pub asn: u32,
    pub source: Source,
}

/// The answer to "who owned this address at this time, and why".
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Attribution {
    #[schema(value_type = String, example = "198.18.4.10")]
    pub ip: IpAddr,
    pub at: DateTime<Utc>,
    /// `network`, `asn` or `none` (unattributed).
    pub matched_by: String,
    pub organisation: Option<OrganisationRef>,
    pub network: Option<MatchedNetwork>,
    pub asn: Option<MatchedAsn>,
    /// In words, for people.
    pub reason: String,
}

impl Attribution {
    pub fn from_match(ip: IpAddr, at: DateTime<Utc>, asn: Option<u32>, m: Match<'_>) -> Self {
        let (organisation, network, asn_match, reason) = match m {
            Match::Network(n) => (
                Some(OrganisationRef {
                    id: n.organisation_id,
                    reference: n.organisation_ref.to_string(),
                }),
                Some(MatchedNetwork {
                    id: n.network_id,
                    cidr: n.cidr,
                    source: n.source,
                    valid_from: n.valid_from.and_then(micros_to_time),
                    valid_to: n.valid_to.and_then(micros_to_time),
                }),
                None,
                format!(
                    "longest registered prefix containing {ip} at {}: {} ({} entry)",
                    at.to_rfc3339(),
                    n.cidr,
                    n.source
                ),
            ),
            Match::Asn(a) => (
                Some(OrganisationRef {
                    id: a.organisation_id,
                    reference: a.organisation_ref.to_string(),
                }),
                None,
                Some(MatchedAsn {
                    id: a.asn_id,
                    asn: a.asn,
                    source: a.source,
                }),
                format!(
                    "no registered network contains {ip}; AS{} is registered to the organisation",
                    a.asn
                ),
            ),
            Match::None => (
                None,
                None,
                None,
                match asn {
                    Some(asn) => format!(
                        "no registered network contains {ip} and AS{asn} has no registered owner"
                    ),
                    None => format!("no registered network contains {ip}"),
                },
            ),
        };
        Self {
            ip,
            at,
            matched_by: m.kind().to_owned(),
            organisation,
            network,
            asn: asn_match,
            reason,
        }
    }
}
