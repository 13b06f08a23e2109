//! Networks and ASNs of an organisation, with ownership history: a change
//! ends the current row (`valid_to` = now) and starts a new one; nothing is
//! rewritten. Rows imported by an importer belong to it: people override
//! them with a manual entry, which wins ties, rather than editing them.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use super::model::{Cidr, Source};
use super::organisations::ensure_exists;
use crate::audit;
use crate::domain::{Actor, DomainError, DomainResult, optional_text};
use crate::http::nullable;

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Network {
    pub id: i64,
    pub organisation_id: i64,
    #[schema(value_type = String, example = "198.18.4.0/23")]
    pub cidr: IpNet,
    pub source: String,
    /// `api` (entered by hand), `csv` or `ripe` (imported).
    pub channel: String,
    pub name: Option<String>,
    /// `null`: since the beginning of time.
    pub valid_from: Option<DateTime<Utc>>,
    /// `null`: still valid.
    pub valid_to: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const NETWORK_COLUMNS: &str =
    "id, organisation_id, cidr, source, channel, name, valid_from, valid_to, created_at";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNetwork {
    /// No host bits set.
    #[schema(value_type = String, format = "cidr", example = "198.18.4.0/23")]
    pub cidr: Cidr,
    /// Default `manual`.
    pub source: Option<Source>,
    #[schema(max_length = 200, pattern = "^[^\\u0000]*$")]
    pub name: Option<String>,
    /// When the organisation got the network, if known; default: since the
    /// beginning of time.
    pub valid_from: Option<DateTime<Utc>>,
}

impl crate::http::BodyShape for NewNetwork {}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkPatch {
    /// Moves the network to another organisation from now on.
    pub organisation_id: Option<i64>,
    pub source: Option<Source>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 200, pattern = "^[^\\u0000]*$")]
    pub name: Option<Option<String>>,
}

impl crate::http::BodyShape for NetworkPatch {}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Include ended rows (ownership history).
    #[serde(default)]
    pub history: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Asn {
    pub id: i64,
    pub organisation_id: i64,
    pub asn: i64,
    pub source: String,
    pub channel: String,
    pub name: Option<String>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const ASN_COLUMNS: &str =
    "id, organisation_id, asn, source, channel, name, valid_from, valid_to, created_at";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAsn {
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64, example = 64500)]
    pub asn: u32,
    pub source: Option<Source>,
    #[schema(max_length = 200, pattern = "^[^\\u0000]*$")]
    pub name: Option<String>,
}

impl crate::http::BodyShape for NewAsn {}

/// The organisation's networks: current ones, or with `history` all rows.
pub async fn list_networks(
    conn: &mut PgConnection,
    organisation_id: i64,
    history: bool,
) -> DomainResult<Vec<Network>> {
    ensure_exists(conn, organisation_id).await?;
    Ok(sqlx::query_as(&format!(
        "SELECT {NETWORK_COLUMNS} FROM networks
          WHERE organisation_id = $1 AND ($2 OR valid_to IS NULL)
          ORDER BY cidr, valid_from NULLS FIRST, id"
    ))
    .bind(organisation_id)
    .bind(history)
    .fetch_all(conn)
    .await?)
}

pub async fn fetch_network(conn: &mut PgConnection, id: i64) -> DomainResult<Network> {
    fetch_network_row(conn, id, false).await
}

async fn fetch_network_row(conn: &mut PgConnection, id: i64, lock: bool) -> DomainResult<Network> {
    sqlx::query_as(&format!(
        "SELECT {NETWORK_COLUMNS} FROM networks WHERE id = $1 {}",
        if lock { "FOR UPDATE" } else { "" }
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| DomainError::not_found(format!("network {id}")))
}

async fn insert_network(
    conn: &mut PgConnection,
    org: i64,
    cidr: IpNet,
    source: Source,
    name: Option<&str>,
    valid_from: Option<DateTime<Utc>>,
) -> DomainResult<Network> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO networks (organisation_id, cidr, source, channel, name, valid_from)
         VALUES ($1, $2, $3, 'api', $4, $5) RETURNING {NETWORK_COLUMNS}"
    ))
    .bind(org)
    .bind(cidr)
    .bind(source.as_str())
    .bind(name)
    .bind(valid_from)
    .fetch_one(conn)
    .await?)
}

/// Registers a network for the organisation.
pub async fn create_network(
    conn: &mut PgConnection,
    actor: &Actor,
    organisation_id: i64,
    new: &NewNetwork,
) -> DomainResult<Network> {
    if new.valid_from.is_some_and(|t| t > Utc::now()) {
        return Err(DomainError::invalid(
            "valid_from",
            "must not be in the future",
        ));
    }
    let name = optional_text("name", new.name.as_deref(), 200)?;
    let mut tx = conn.begin().await?;
    ensure_exists(&mut tx, organisation_id).await?;
    let network = insert_network(
        &mut tx,
        organisation_id,
        new.cidr.net(),
        new.source.unwrap_or(Source::Manual),
        name.as_deref(),
        new.valid_from,
    )
    .await?;
    audit::commit(
        tx,
        actor,
        "network.create",
        &format!("network:{}", network.id),
        serde_json::json!({ "organisation_id": organisation_id, "cidr": network.cidr.to_string() }),
    )
    .await?;
    Ok(network)
}

fn check_changeable(network: &Network) -> DomainResult<()> {
    if network.valid_to.is_some() {
        return Err(DomainError::conflict(format!(
            "network {} ended at {}; history is not rewritten",
            network.id,
            network.valid_to.map(|t| t.to_rfc3339()).unwrap_or_default()
        )));
    }
    if network.channel != "api" {
        return Err(DomainError::conflict(format!(
            "network {} was imported ({}); the next import would undo a change. \
             Register a manual network for {} instead: it takes precedence",
            network.id, network.channel, network.cidr
        )));
    }
    Ok(())
}

/// Changes a network. A new owner or source ends this row now and starts a
/// new one (returned); a new name changes it in place.
pub async fn update_network(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    patch: &NetworkPatch,
) -> DomainResult<Network> {
    let mut tx = conn.begin().await?;
    let current = fetch_network_row(&mut tx, id, true).await?;
    check_changeable(&current)?;
    let before = audit::snapshot(&mut tx, "networks", id).await?;
    let new_org = patch.organisation_id.unwrap_or(current.organisation_id);
    let current_source = Source::parse(&current.source).map_err(anyhow::Error::msg)?;
    let new_source = patch.source.unwrap_or(current_source);
    let name = match &patch.name {
        Some(n) => optional_text("name", n.as_deref(), 200)?,
        None => current.name.clone(),
    };
    let network = if new_org != current.organisation_id || new_source != current_source {
        if new_org != current.organisation_id {
            ensure_exists(&mut tx, new_org).await?;
        }
        // Both rows get the same instant: the transaction's start time.
        sqlx::query("UPDATE networks SET valid_to = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await?;
        insert_network(
            &mut tx,
            new_org,
            current.cidr,
            new_source,
            name.as_deref(),
            Some(now),
        )
        .await?
    } else {
        sqlx::query_as(&format!(
            "UPDATE networks SET name = $2 WHERE id = $1 RETURNING {NETWORK_COLUMNS}"
        ))
        .bind(id)
        .bind(&name)
        .fetch_one(&mut *tx)
        .await?
    };
    let after = audit::snapshot(&mut tx, "networks", network.id).await?;
    let mut detail = audit::changes(before.as_ref(), after.as_ref());
    detail["new_row"] = network.id.into();
    audit::commit(
        tx,
        actor,
        "network.update",
        &format!("network:{id}"),
        detail,
    )
    .await?;
    Ok(network)
}

/// Ends a network's validity now (history is kept).
pub async fn end_network(conn: &mut PgConnection, actor: &Actor, id: i64) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    let current = fetch_network_row(&mut tx, id, true).await?;
    check_changeable(&current)?;
    let before = audit::snapshot(&mut tx, "networks", id).await?;
    sqlx::query("UPDATE networks SET valid_to = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let after = audit::snapshot(&mut tx, "networks", id).await?;
    audit::commit(
        tx,
        actor,
        "network.end",
        &format!("network:{id}"),
        audit::changes(before.as_ref(), after.as_ref()),
    )
    .await?;
    Ok(())
}

/// The organisation's ASNs: current ones, or with `history` all rows.
pub async fn list_asns(
    conn: &mut PgConnection,
    organisation_id: i64,
    history: bool,
) -> DomainResult<Vec<Asn>> {
    ensure_exists(conn, organisation_id).await?;
    Ok(sqlx::query_as(&format!(
        "SELECT {ASN_COLUMNS} FROM asns WHERE organisation_id = $1 AND ($2 OR valid_to IS NULL) ORDER BY asn, id"
    ))
    .bind(organisation_id)
    .bind(history)
    .fetch_all(conn)
    .await?)
}

/// Registers an ASN for the organisation (the fallback owner of addresses
/// no registered network contains).
pub async fn create_asn(
    conn: &mut PgConnection,
    actor: &Actor,
    organisation_id: i64,
    new: &NewAsn,
) -> DomainResult<Asn> {
    let name = optional_text("name", new.name.as_deref(), 200)?;
    let mut tx = conn.begin().await?;
    ensure_exists(&mut tx, organisation_id).await?;
    let asn: Asn = sqlx::query_as(&format!(
        "INSERT INTO asns (organisation_id, asn, source, channel, name)
         VALUES ($1, $2, $3, 'api', $4) RETURNING {ASN_COLUMNS}"
    ))
    .bind(organisation_id)
    .bind(i64::from(new.asn))
    .bind(new.source.unwrap_or(Source::Manual).as_str())
    .bind(&name)
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "asn.create",
        &format!("asn:{}", asn.id),
        serde_json::json!({ "organisation_id": organisation_id, "asn": new.asn }),
    )
    .await?;
    Ok(asn)
}

/// Ends an ASN registration now.
pub async fn end_asn(conn: &mut PgConnection, actor: &Actor, id: i64) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    let row: Option<(Option<DateTime<Utc>>, String)> =
        sqlx::query_as("SELECT valid_to, channel FROM asns WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    match row {
        None => return Err(DomainError::not_found(format!("ASN registration {id}"))),
        Some((Some(_), _)) => {
            return Err(DomainError::conflict(format!(
                "ASN registration {id} has already ended"
            )));
        }
        Some((None, channel)) if channel != "api" => {
            return Err(DomainError::conflict(format!(
                "ASN registration {id} was imported ({channel}); the next import would undo this"
            )));
        }
        Some(_) => {}
    }
    sqlx::query("UPDATE asns SET valid_to = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::commit(
        tx,
        actor,
        "asn.end",
        &format!("asn:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}
