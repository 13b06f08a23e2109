//! Makes the database agree with an import [`Snapshot`], incrementally and
//! in one transaction: rows this importer owns (its channel) are added,
//! changed (ownership changes end the old row and start a new one) or ended
//! when they vanished; rows entered by hand are never touched. A failure
//! anywhere leaves the registry as it was.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::snapshot::{Rejection, Snapshot};

/// Which importer owns the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Csv,
    Ripe,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Csv => "csv",
            Channel::Ripe => "ripe",
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub added: u64,
    pub changed: u64,
    pub ended: u64,
    pub unchanged: u64,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportSummary {
    pub organisations: Counts,
    pub contacts: Counts,
    pub networks: Counts,
    pub asns: Counts,
    pub rejected: Vec<Rejection>,
    /// Records passed over on purpose, by reason (see [`Snapshot::skipped`]).
    pub skipped: BTreeMap<&'static str, u64>,
    /// Records imported on an inference, by reason (see [`Snapshot::inferred`]).
    pub inferred: BTreeMap<&'static str, u64>,
    pub dry_run: bool,
}

struct ExistingOrg {
    id: i64,
    name: String,
    org_number: Option<String>,
    sector: Option<String>,
    channel: String,
}

/// Applies `snapshot` as the complete current state of `channel`'s rows.
pub async fn apply(
    pool: &PgPool,
    snapshot: Snapshot,
    channel: Channel,
    dry_run: bool,
) -> anyhow::Result<ImportSummary> {
    let mut summary = ImportSummary {
        rejected: snapshot.rejected.clone(),
        skipped: snapshot.skipped.clone(),
        inferred: snapshot.inferred.clone(),
        dry_run,
        ..ImportSummary::default()
    };
    let mut tx = pool.begin().await?;
    // One import at a time: two would each end the other's rows.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('varsel:registry-import'))")
        .execute(&mut *tx)
        .await?;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *tx)
        .await?;

    let org_ids = apply_organisations(&mut tx, &snapshot, channel, &mut summary).await?;
    apply_contacts(&mut tx, &snapshot, channel, &org_ids, &mut summary).await?;
    let networks = snapshot
        .networks
        .iter()
        .map(|n| {
            let label = format!("network {}", n.cidr);
            (
                n.cidr,
                n.organisation_ref.as_str(),
                n.source.as_str(),
                n.name.clone(),
                label,
            )
        })
        .collect();
    summary.networks = apply_versioned(
        &mut tx,
        &NETWORKS,
        networks,
        channel,
        &org_ids,
        now,
        &mut summary.rejected,
    )
    .await?;
    let asns = snapshot
        .asns
        .iter()
        .map(|a| {
            let label = format!("AS{}", a.asn);
            (
                i64::from(a.asn),
                a.organisation_ref.as_str(),
                "registry",
                a.name.clone(),
                label,
            )
        })
        .collect();
    summary.asns = apply_versioned(
        &mut tx,
        &ASNS,
        asns,
        channel,
        &org_ids,
        now,
        &mut summary.rejected,
    )
    .await?;

    crate::audit::record(
        &mut tx,
        &crate::domain::Actor::Import(channel.as_str()),
        "registry.import",
        "registry",
        serde_json::json!({
            "organisations": summary.organisations,
            "contacts": summary.contacts,
            "networks": summary.networks,
            "asns": summary.asns,
            "rejected": summary.rejected.len(),
        }),
    )
    .await?;
    if dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok(summary)
}

fn reject(rejected: &mut Vec<Rejection>, file: &str, reason: String) {
    rejected.push(Rejection {
        file: file.to_owned(),
        line: 0,
        reason,
    });
}

async fn apply_organisations(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    channel: Channel,
    summary: &mut ImportSummary,
) -> anyhow::Result<HashMap<String, i64>> {
    type Row = (i64, String, String, Option<String>, Option<String>, String);
    let rows: Vec<Row> =
        sqlx::query_as("SELECT id, ref, name, org_number, sector, channel FROM organisations")
            .fetch_all(&mut *conn)
            .await?;
    let mut existing: HashMap<String, ExistingOrg> = HashMap::with_capacity(rows.len());
    for (id, reference, name, org_number, sector, ch) in rows {
        existing.insert(
            reference,
            ExistingOrg {
                id,
                name,
                org_number,
                sector,
                channel: ch,
            },
        );
    }

    let mut ids: HashMap<String, i64> = existing.iter().map(|(r, o)| (r.clone(), o.id)).collect();
    let (mut new_refs, mut new_names, mut new_numbers, mut new_sectors) =
        (vec![], vec![], vec![], vec![]);
    let (mut upd_ids, mut upd_names, mut upd_numbers, mut upd_sectors) =
        (vec![], vec![], vec![], vec![]);
    for org in &snapshot.organisations {
        let number = org.org_number.as_ref().map(|n| n.as_str().to_owned());
        match existing.get(&org.reference) {
            None => {
                new_refs.push(org.reference.clone());
                new_names.push(org.name.clone());
                new_numbers.push(number);
                new_sectors.push(org.sector.clone());
            }
            Some(e) if e.channel == channel.as_str() => {
                if e.name != org.name || e.org_number != number || e.sector != org.sector {
                    upd_ids.push(e.id);
                    upd_names.push(org.name.clone());
                    upd_numbers.push(number);
                    upd_sectors.push(org.sector.clone());
                    summary.organisations.changed += 1;
                } else {
                    summary.organisations.unchanged += 1;
                }
            }
            // Entered by hand or owned by another importer: keep as it is.
            Some(_) => summary.organisations.unchanged += 1,
        }
    }
    if !new_refs.is_empty() {
        let inserted: Vec<(i64, String)> = sqlx::query_as(
            "INSERT INTO organisations (ref, name, org_number, sector, channel)
             SELECT r, n, o, s, $5 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(r, n, o, s)
             RETURNING id, ref",
        )
        .bind(&new_refs)
        .bind(&new_names)
        .bind(&new_numbers)
        .bind(&new_sectors)
        .bind(channel.as_str())
        .fetch_all(&mut *conn)
        .await?;
        summary.organisations.added += inserted.len() as u64;
        ids.extend(inserted.into_iter().map(|(id, r)| (r, id)));
    }
    if !upd_ids.is_empty() {
        sqlx::query(
            "UPDATE organisations o SET name = u.n, org_number = u.num, sector = u.s
               FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(id, n, num, s)
              WHERE o.id = u.id",
        )
        .bind(&upd_ids)
        .bind(&upd_names)
        .bind(&upd_numbers)
        .bind(&upd_sectors)
        .execute(&mut *conn)
        .await?;
    }
    Ok(ids)
}

async fn apply_contacts(
    conn: &mut PgConnection,
    snapshot: &Snapshot,
    channel: Channel,
    org_ids: &HashMap<String, i64>,
    summary: &mut ImportSummary,
) -> anyhow::Result<()> {
    type Row = (
        i64,
        i64,
        String,
        Option<String>,
        String,
        String,
        bool,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, organisation_id, email, name, role, language, enabled, channel FROM contacts",
    )
    .fetch_all(&mut *conn)
    .await?;
    let existing: HashMap<(i64, String), Row> = rows
        .into_iter()
        .map(|r| ((r.1, r.2.to_lowercase()), r))
        .collect();
    let mut seen: HashSet<i64> = HashSet::new();
    let (mut add_org, mut add_email, mut add_name, mut add_role, mut add_lang) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut upd_id, mut upd_name, mut upd_role, mut upd_lang) = (vec![], vec![], vec![], vec![]);
    let mut queued: HashSet<(i64, String)> = HashSet::new();
    for org in &snapshot.organisations {
        let Some(&org_id) = org_ids.get(&org.reference) else {
            continue;
        };
        for c in &org.contacts {
            let key = (org_id, c.email.as_str().to_lowercase());
            match existing.get(&key) {
                None => {
                    if queued.insert(key) {
                        add_org.push(org_id);
                        add_email.push(c.email.as_str().to_owned());
                        add_name.push(c.name.clone());
                        add_role.push(c.role.as_str());
                        add_lang.push(c.language.as_str());
                    }
                }
                Some(row) if row.7 == channel.as_str() => {
                    seen.insert(row.0);
                    if row.3 != c.name
                        || row.4 != c.role.as_str()
                        || row.5 != c.language.as_str()
                        || !row.6
                    {
                        upd_id.push(row.0);
                        upd_name.push(c.name.clone());
                        upd_role.push(c.role.as_str());
                        upd_lang.push(c.language.as_str());
                        summary.contacts.changed += 1;
                    } else {
                        summary.contacts.unchanged += 1;
                    }
                }
                Some(_) => summary.contacts.unchanged += 1,
            }
        }
    }
    if !add_org.is_empty() {
        let n = sqlx::query(
            "INSERT INTO contacts (organisation_id, email, name, role, language, provenance, channel)
             SELECT o, e, n, r, l, 'registry', $6
               FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(o, e, n, r, l)",
        )
        .bind(&add_org)
        .bind(&add_email)
        .bind(&add_name)
        .bind(&add_role)
        .bind(&add_lang)
        .bind(channel.as_str())
        .execute(&mut *conn)
        .await?
        .rows_affected();
        summary.contacts.added += n;
    }
    if !upd_id.is_empty() {
        sqlx::query(
            "UPDATE contacts c SET name = u.n, role = u.r, language = u.l, enabled = true
               FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS u(id, n, r, l)
              WHERE c.id = u.id",
        )
        .bind(&upd_id)
        .bind(&upd_name)
        .bind(&upd_role)
        .bind(&upd_lang)
        .execute(&mut *conn)
        .await?;
    }
    // Imported contacts that vanished are disabled, not deleted: deliveries
    // already made to them keep their recipient.
    let vanished: Vec<i64> = existing
        .values()
        .filter(|r| r.7 == channel.as_str() && r.6 && !seen.contains(&r.0))
        .map(|r| r.0)
        .collect();
    if !vanished.is_empty() {
        summary.contacts.ended +=
            sqlx::query("UPDATE contacts SET enabled = false WHERE id = ANY($1)")
                .bind(&vanished)
                .execute(&mut *conn)
                .await?
                .rows_affected();
    }
    Ok(())
}

/// The registry rows one importer owns, keyed by what identifies them
/// (a CIDR, an ASN), with what a re-import compares.
struct Owned<K> {
    id: i64,
    key: K,
    organisation_id: i64,
    source: String,
    name: Option<String>,
}

/// A row to insert: key, organisation, source, name, valid from.
type NewRow<K> = (K, i64, String, Option<String>, Option<DateTime<Utc>>);

/// What to write for one kind of versioned row (networks, ASNs).
struct Plan<K> {
    insert: Vec<NewRow<K>>,
    end: Vec<i64>,
    rename: Vec<(i64, Option<String>)>,
}

/// Compares the current owned rows with the imported ones.
fn plan<K: Clone + Eq + std::hash::Hash>(
    current: Vec<Owned<K>>,
    ever: &HashSet<K>,
    imported: Vec<(K, i64, String, Option<String>)>,
    now: DateTime<Utc>,
    counts: &mut Counts,
) -> Plan<K> {
    let mut by_key: HashMap<K, Owned<K>> =
        current.into_iter().map(|o| (o.key.clone(), o)).collect();
    let mut p = Plan {
        insert: vec![],
        end: vec![],
        rename: vec![],
    };
    for (key, org, source, name) in imported {
        match by_key.remove(&key) {
            None => {
                // Never seen: its start is unknown, so since the beginning
                // of time. Back after a gap: from now.
                let from = ever.contains(&key).then_some(now);
                p.insert.push((key, org, source, name, from));
                counts.added += 1;
            }
            Some(old) if old.organisation_id != org || old.source != source => {
                p.end.push(old.id);
                p.insert.push((key, org, source, name, Some(now)));
                counts.changed += 1;
            }
            Some(old) if old.name != name => {
                p.rename.push((old.id, name));
                counts.changed += 1;
            }
            Some(_) => counts.unchanged += 1,
        }
    }
    counts.ended += by_key.len() as u64;
    p.end.extend(by_key.into_values().map(|o| o.id));
    p
}

fn resolve_owner(
    org_ids: &HashMap<String, i64>,
    reference: &str,
    what: &str,
    rejected: &mut Vec<Rejection>,
) -> Option<i64> {
    let id = org_ids.get(reference).copied();
    if id.is_none() {
        reject(
            rejected,
            what,
            format!(
                "{what} names organisation {reference:?}, which is neither in the import nor registered"
            ),
        );
    }
    id
}

type Columns = (
    Vec<i64>,
    Vec<String>,
    Vec<Option<String>>,
    Vec<Option<DateTime<Utc>>>,
);

fn columns<K>(rows: &[NewRow<K>]) -> Columns {
    (
        rows.iter().map(|r| r.1).collect(),
        rows.iter().map(|r| r.2.clone()).collect(),
        rows.iter().map(|r| r.3.clone()).collect(),
        rows.iter().map(|r| r.4).collect(),
    )
}

async fn end_rows(
    conn: &mut PgConnection,
    table: &str,
    ids: &[i64],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    if !ids.is_empty() {
        sqlx::query(&format!(
            "UPDATE {table} SET valid_to = $2 WHERE id = ANY($1)"
        ))
        .bind(ids)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn rename_rows(
    conn: &mut PgConnection,
    table: &str,
    rows: &[(i64, Option<String>)],
) -> anyhow::Result<()> {
    if !rows.is_empty() {
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let names: Vec<Option<String>> = rows.iter().map(|r| r.1.clone()).collect();
        sqlx::query(&format!(
            "UPDATE {table} t SET name = u.name FROM unnest($1::bigint[], $2::text[]) AS u(id, name) WHERE t.id = u.id"
        ))
        .bind(&ids)
        .bind(&names)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The table of one kind of versioned registry row (networks, ASNs).
struct Versioned {
    table: &'static str,
    /// The column that identifies a row across imports, and its SQL type.
    key: &'static str,
    key_type: &'static str,
}

const NETWORKS: Versioned = Versioned {
    table: "networks",
    key: "cidr",
    key_type: "cidr",
};

const ASNS: Versioned = Versioned {
    table: "asns",
    key: "asn",
    key_type: "bigint",
};

/// One imported row: key, owner's ref, source, name, and how to name it in
/// a rejection.
type Imported<'a, K> = (K, &'a str, &'static str, Option<String>, String);

/// Makes `channel`'s rows of `spec.table` agree with `imported`.
async fn apply_versioned<K>(
    conn: &mut PgConnection,
    spec: &Versioned,
    imported: Vec<Imported<'_, K>>,
    channel: Channel,
    org_ids: &HashMap<String, i64>,
    now: DateTime<Utc>,
    rejected: &mut Vec<Rejection>,
) -> anyhow::Result<Counts>
where
    K: Clone + Eq + std::hash::Hash + Send + Sync + Unpin,
    K: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    for<'q> Vec<K>: sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    let Versioned {
        table,
        key,
        key_type,
    } = spec;
    let rows: Vec<(i64, K, i64, String, Option<String>, bool)> = sqlx::query_as(&format!(
        "SELECT id, {key}, organisation_id, source, name, valid_to IS NULL FROM {table} WHERE channel = $1"
    ))
    .bind(channel.as_str())
    .fetch_all(&mut *conn)
    .await?;
    let ever: HashSet<K> = rows.iter().map(|r| r.1.clone()).collect();
    let current = rows
        .into_iter()
        .filter(|r| r.5)
        .map(|(id, key, organisation_id, source, name, _)| Owned {
            id,
            key,
            organisation_id,
            source,
            name,
        })
        .collect();
    let mut wanted = Vec::with_capacity(imported.len());
    let mut keys = HashSet::new();
    for (k, reference, source, name, label) in imported {
        let Some(org) = resolve_owner(org_ids, reference, &label, rejected) else {
            continue;
        };
        if !keys.insert(k.clone()) {
            reject(
                rejected,
                table,
                format!("{label} appears twice; the first one counts"),
            );
            continue;
        }
        wanted.push((k, org, source.to_owned(), name));
    }
    let mut counts = Counts::default();
    let p = plan(current, &ever, wanted, now, &mut counts);
    end_rows(conn, table, &p.end, now).await?;
    rename_rows(conn, table, &p.rename).await?;
    if !p.insert.is_empty() {
        let new_keys: Vec<K> = p.insert.iter().map(|r| r.0.clone()).collect();
        let (orgs, sources, names, froms) = columns(&p.insert);
        sqlx::query(&format!(
            "INSERT INTO {table} ({key}, organisation_id, source, name, valid_from, channel)
             SELECT *, $6 FROM unnest($1::{key_type}[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[])"
        ))
        .bind(&new_keys)
        .bind(&orgs)
        .bind(&sources)
        .bind(&names)
        .bind(&froms)
        .bind(channel.as_str())
        .execute(&mut *conn)
        .await?;
    }
    Ok(counts)
}
