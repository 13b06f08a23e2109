//! `/api/v1/lookup`: attribution of one address (GET) or up to 100 000 in one
//! call (POST), answered from the in-memory table.

use std::net::IpAddr;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::Attribution;
use crate::app::AppState;
use crate::auth::{Caller, Read};
use crate::error::{ApiError, ApiResult};
use crate::http::{JsonBody, QueryParams};

pub const MAX_BULK_LOOKUP: usize = 100_000;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/lookup",
        get(lookup_one)
            .post(lookup_many)
            // 100 000 addresses as objects with times fit in 16 MiB.
            .layer(DefaultBodyLimit::max(16 * 1024 * 1024)),
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LookupQuery {
    /// IPv4 or IPv6 address.
    #[param(format = "ip", example = "192.0.2.1")]
    pub ip: String,
    /// RFC 3339 time; default now.
    #[param(format = DateTime)]
    pub at: Option<String>,
    /// Owner of this ASN is the fallback when no network matches.
    #[param(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    pub asn: Option<u32>,
}

fn parse_ip(field: &str, s: &str) -> Result<IpAddr, ApiError> {
    s.trim()
        .parse()
        .map_err(|_| ApiError::invalid(field, format!("{s:?} is not an IPv4 or IPv6 address")))
}

fn parse_at(field: &str, s: Option<&str>) -> Result<DateTime<Utc>, ApiError> {
    match s {
        None => Ok(Utc::now()),
        Some(s) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::invalid(
                    field,
                    format!("{s:?} is not an RFC 3339 time with zone, e.g. 2021-03-05T12:00:00Z"),
                )
            }),
    }
}

/// Who owned this address (at `at`), and why.
#[utoipa::path(get, path = "/api/v1/lookup", tag = "attribution", params(LookupQuery),
    responses((status = 200, body = Attribution), (status = 422, body = crate::error::Problem)),
    security(("bearer" = ["read"])))]
pub async fn lookup_one(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<LookupQuery>,
) -> ApiResult<Json<Attribution>> {
    let ip = parse_ip("ip", &q.ip)?;
    let at = parse_at("at", q.at.as_deref())?;
    let table = state.attributor.current(&state.pool).await?;
    let m = table.attribute(ip, at.timestamp_micros(), q.asn);
    state.metrics.addresses_attributed.inc();
    Ok(Json(Attribution::from_match(ip, at, q.asn, m)))
}

/// One element of a bulk lookup: an address, or an object with an address,
/// an optional time and ASN.
#[derive(Debug, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LookupItem {
    Address(#[schema(inline)] IpAddress),
    Detailed(#[schema(inline)] DetailedItem),
}

/// An IPv4 or IPv6 address (for the document; read as a string).
#[derive(Debug, utoipa::ToSchema)]
#[schema(format = "ip", example = "192.0.2.1")]
pub struct IpAddress(pub String);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailedItem {
    #[schema(format = "ip", example = "192.0.2.1")]
    ip: String,
    /// RFC 3339 time; default now.
    #[schema(format = DateTime)]
    at: Option<String>,
    /// Owner of this ASN is the fallback when no network matches.
    #[schema(format = Int64, minimum = 0, maximum = 4294967295_u64)]
    asn: Option<u32>,
}

// By hand rather than `#[serde(untagged)]`, which buffers every element
// before trying each variant: at 100 000 elements that was a third of the
// request's time.
impl<'de> Deserialize<'de> for LookupItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = LookupItem;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an address string or an object {ip, at, asn}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LookupItem, E> {
                Ok(LookupItem::Address(IpAddress(v.to_owned())))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<LookupItem, A::Error> {
                let d =
                    DetailedItem::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(LookupItem::Detailed(d))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Attribute up to 100 000 addresses; the answers come in input order.
#[utoipa::path(post, path = "/api/v1/lookup", tag = "attribution", request_body = Vec<LookupItem>,
    responses((status = 200, body = Vec<Attribution>), (status = 422, body = crate::error::Problem)),
    security(("bearer" = ["read"])))]
pub async fn lookup_many(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    JsonBody(items): JsonBody<Vec<LookupItem>>,
) -> ApiResult<Json<Vec<Attribution>>> {
    if items.len() > MAX_BULK_LOOKUP {
        return Err(ApiError::BadRequest(format!(
            "{} addresses in one call; at most {MAX_BULK_LOOKUP}",
            items.len()
        )));
    }
    let now = Utc::now();
    let table = state.attributor.current(&state.pool).await?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (ip, at, asn) = match item {
            LookupItem::Address(IpAddress(ip)) => (parse_ip(&format!("[{i}]"), ip)?, now, None),
            LookupItem::Detailed(d) => (
                parse_ip(&format!("[{i}].ip"), &d.ip)?,
                match &d.at {
                    Some(at) => parse_at(&format!("[{i}].at"), Some(at))?,
                    None => now,
                },
                d.asn,
            ),
        };
        out.push(Attribution::from_match(
            ip,
            at,
            asn,
            table.attribute(ip, at.timestamp_micros(), asn),
        ));
    }
    state.metrics.addresses_attributed.inc_by(out.len() as u64);
    Ok(Json(out))
}
