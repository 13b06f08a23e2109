//! Late attribution: when the registry learns an owner, findings that were
//! unattributed (the triage queue) get one, as of when they were first
//! seen, and say so in their history. Runs as the `attribute_triage` job,
//! which every change of networks or ASNs enqueues. A finding its owner
//! disputed ("not ours") is never given back to that owner here.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::attribution::Attributor;
use crate::attribution::table::Match;

/// A finding in the triage queue.
#[derive(sqlx::FromRow)]
struct Unattributed {
    id: i64,
    ip: IpAddr,
    first_seen: DateTime<Utc>,
    asn: Option<i64>,
    /// The organisation that said it is not theirs.
    disputed_by: Option<i64>,
}

/// Attributes what the current registry can; returns how many findings got
/// an owner.
///
/// It takes the findings writer lock first, in its own transaction: a batch
/// still being ingested when the registry changed (attributed with the old
/// table) has then committed, and its findings are read here; a batch that
/// starts later waits, and attributes with the new table itself. Without
/// the lock, this job could run between the registry change and such a
/// batch's commit, and its findings would wait in triage for good.
pub async fn attribute_unattributed(
    pool: &PgPool,
    attributor: &Attributor,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    crate::findings::store::lock_writers(&mut tx).await?;
    let table = attributor.current(pool).await?;
    let rows: Vec<Unattributed> = sqlx::query_as(
        "SELECT id, ip, first_seen, asn, disputed_by FROM findings WHERE organisation_id IS NULL AND current",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut ids = Vec::new();
    let mut orgs = Vec::new();
    let mut networks = Vec::new();
    let mut kinds = Vec::new();
    let mut reasons = Vec::new();
    for Unattributed {
        id,
        ip,
        first_seen,
        asn,
        disputed_by,
    } in rows
    {
        let asn32 = asn.and_then(|a| u32::try_from(a).ok());
        let m = table.attribute(ip, first_seen.timestamp_micros(), asn32);
        let (org, network, reason) = match m {
            Match::Network(n) => (
                n.organisation_id,
                Some(n.network_id),
                format!(
                    "registry now has {} ({}) for {ip}, owned by {}",
                    n.cidr, n.source, n.organisation_ref
                ),
            ),
            Match::Asn(a) => (
                a.organisation_id,
                None,
                format!(
                    "registry now has AS{} for {ip}, owned by {}",
                    a.asn, a.organisation_ref
                ),
            ),
            Match::None => continue,
        };
        // The organisation said the address is not its own: only an
        // analyst gives it back.
        if disputed_by == Some(org) {
            continue;
        }
        ids.push(id);
        orgs.push(org);
        networks.push(network);
        kinds.push(m.kind());
        reasons.push(reason);
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let updated: Vec<i64> = sqlx::query_scalar(
        "UPDATE findings f SET organisation_id = u.org, network_id = u.network, attribution = u.kind, updated_at = now()
           FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[]) AS u(id, org, network, kind)
          WHERE f.id = u.id AND f.organisation_id IS NULL
         RETURNING f.id",
    )
    .bind(&ids)
    .bind(&orgs)
    .bind(&networks)
    .bind(&kinds)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO finding_events (finding_id, at, kind, reason)
         SELECT u.id, $4, 'attributed', u.reason FROM unnest($1::bigint[], $2::text[]) AS u(id, reason)
          WHERE u.id = ANY($3)",
    )
    .bind(&ids)
    .bind(&reasons)
    .bind(&updated)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if !updated.is_empty() {
        // Newly owned findings may belong in an organisation's notification.
        crate::notifications::drafting::enqueue_if_active(&mut tx, now).await?;
    }
    tx.commit().await?;
    Ok(updated.len() as u64)
}
