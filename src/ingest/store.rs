//! Storing observations: monthly partitions created on demand, rows written with `COPY` (the fastest way into
//! PostgreSQL), and retention by dropping whole partitions.

use std::collections::HashSet;

use anyhow::Context;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};

use super::observation::Observation;
use crate::db::copy::CopyIn;

fn month_start(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, 1)
}

fn next_month(year: i32, month: u32) -> (i32, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

fn partition_name(year: i32, month: u32) -> String {
    format!("observations_y{year:04}m{month:02}")
}

/// Makes sure a monthly partition exists for every month in `times`. Asks the
/// catalogue each time (one cheap query per chunk) rather than caching,
/// because the retention job of any instance may drop a month. Missing
/// ones are created on their own connection, outside the ingest
/// transaction: the table is created alone and then attached, which
/// needs only a SHARE UPDATE EXCLUSIVE lock on the parent and so never
/// waits for ingest transactions that are writing to it.
pub async fn ensure_partitions(
    pool: &PgPool,
    times: impl Iterator<Item = DateTime<Utc>>,
) -> anyhow::Result<()> {
    let wanted: HashSet<(i32, u32)> = times.map(|t| (t.year(), t.month())).collect();
    let names: Vec<String> = wanted.iter().map(|&(y, m)| partition_name(y, m)).collect();
    let existing: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'observations'::regclass AND c.relname = ANY($1)",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    for (year, month) in wanted {
        if !existing.contains(&partition_name(year, month)) {
            create_partition(pool, year, month).await?;
        }
    }
    Ok(())
}

async fn create_partition(pool: &PgPool, year: i32, month: u32) -> anyhow::Result<()> {
    let name = partition_name(year, month);
    let (ny, nm) = next_month(year, month);
    let (Some(from), Some(to)) = (month_start(year, month), month_start(ny, nm)) else {
        anyhow::bail!("no such month {year}-{month}");
    };
    let mut tx = pool.begin().await?;
    // One creator at a time across all instances.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('varsel:observation-partitions'))")
        .execute(&mut *tx)
        .await?;
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                         WHERE i.inhparent = 'observations'::regclass AND c.relname = $1)",
    )
    .bind(&name)
    .fetch_one(&mut *tx)
    .await?;
    if !exists {
        sqlx::query(&format!(
            "CREATE TABLE IF NOT EXISTS {name} (LIKE observations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        ))
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "ALTER TABLE observations ATTACH PARTITION {name}
               FOR VALUES FROM ('{from}T00:00:00Z') TO ('{to}T00:00:00Z')"
        ))
        .execute(&mut *tx)
        .await
        .with_context(|| format!("attaching partition {name}"))?;
    }
    tx.commit().await?;
    Ok(())
}

/// Drops monthly partitions whose whole month is older than `days` days.
pub async fn drop_expired_partitions(pool: &PgPool, days: u32) -> anyhow::Result<Vec<String>> {
    let cutoff = Utc::now() - chrono::Duration::days(i64::from(days));
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = 'observations'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut dropped = Vec::new();
    for name in names {
        let Some((y, m)) = name
            .strip_prefix("observations_y")
            .and_then(|s| s.split_once('m'))
            .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
        else {
            continue;
        };
        let (ny, nm) = next_month(y, m);
        let Some(end) = month_start(ny, nm).and_then(|d| d.and_hms_opt(0, 0, 0)) else {
            continue;
        };
        if end.and_utc() <= cutoff {
            // Detached concurrently first, so ingest writing to other months
            // is not blocked; then the lone table goes.
            sqlx::query(&format!(
                "ALTER TABLE observations DETACH PARTITION {name} CONCURRENTLY"
            ))
            .execute(pool)
            .await?;
            sqlx::query(&format!("DROP TABLE IF EXISTS {name}"))
                .execute(pool)
                .await?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}

/// One observation as stored, with what ingest learnt about it.
pub struct StoredObservation<'a> {
    pub id: i64,
    pub scan_run_id: Option<i64>,
    pub finding_id: Option<i64>,
    pub organisation_id: Option<i64>,
    pub network_id: Option<i64>,
    pub attribution: &'static str,
    pub observation: &'a Observation,
}

const COPY_COLUMNS: &str = "(id, observed_at, scan_run_id, finding_id, ip, port, protocol, \
     check_id, state, cves, severity, hostname, product, version, asn, evidence, raw, organisation_id, \
     network_id, attribution)";

/// Writes the rows into `observations` with one COPY.
pub async fn copy_observations(
    conn: &mut PgConnection,
    rows: &[StoredObservation<'_>],
) -> anyhow::Result<()> {
    copy_rows(conn, "observations", rows).await
}

/// Writes the rows into `table` (with the observations' columns) with one
/// COPY.
pub async fn copy_rows(
    conn: &mut PgConnection,
    table: &str,
    rows: &[StoredObservation<'_>],
) -> anyhow::Result<()> {
    let mut copy = CopyIn::start(conn, table, COPY_COLUMNS).await?;
    for r in rows {
        let o = r.observation;
        copy.value(r.id)
            .value(o.observed_at)
            .value(r.scan_run_id)
            .value(r.finding_id)
            .value(o.ip)
            .value(i32::from(o.port))
            .text(&o.protocol)
            .text(&o.check)
            .value(o.state.as_str())
            .value(&o.cves)
            .value(o.severity.map(|s| s.as_str()))
            .opt_text(o.hostname.as_deref())
            .opt_text(o.product.as_deref())
            .opt_text(o.version.as_deref())
            .value(o.asn.map(i64::from))
            .opt_text(o.evidence.as_deref())
            .text(&o.raw)
            .value(r.organisation_id)
            .value(r.network_id)
            .value(r.attribution);
        copy.end_row().await?;
    }
    copy.finish().await?;
    Ok(())
}
