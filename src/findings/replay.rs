//! Replaying a key: when new inputs cannot be folded into a key's stored
//! findings in place (`fold::fold_more` says so: a late observation that
//! changes the past, a `not_vulnerable` stored before an older sighting),
//! everything the key was folded from is read back (its observations,
//! owned or not, the finished scan runs that covered it without seeing it,
//! analysts' closures) and folded again with the new inputs. The findings
//! and history that come out are what the set of inputs gives, whatever
//! order they came in; [`Replayed`] says what to write to get there.
//!
//! Stored findings keep their ids and their owner (an analyst's or late
//! attribution's choice stands); the fold's history of the key is written
//! anew only when it differs. A late observation can join a finding to its
//! predecessor (it falls in the 90 days after that one's resolution); the
//! successor then stops being current and says so in its history.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::coverage::Coverage;
use super::fold::{self, Event, EventKind, FindingState, Input, Owner, Seen};
use super::store::{Key, SELECT_COLUMNS, StoredFinding, key_arrays};
use crate::ingest::observation::{ObservationState, Severity};

/// An observation as stored, with what the fold needs of it.
struct StoredObservation {
    id: i64,
    finding_id: Option<i64>,
    scan_run_id: Option<i64>,
    observed_at: DateTime<Utc>,
    state: ObservationState,
    severity: Option<Severity>,
    cves: Vec<String>,
    owner: Owner,
}

struct Closure {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    note: String,
}

/// A history event of the fold as stored, comparable with a replayed one.
#[derive(PartialEq, Eq, Hash)]
struct StoredEvent {
    finding_id: i64,
    at: DateTime<Utc>,
    kind: EventKind,
    reason: String,
    observation_id: Option<i64>,
    scan_run_id: Option<i64>,
    from_state: Option<ObservationState>,
    to_state: Option<ObservationState>,
}

/// Everything stored of one key.
#[derive(Default)]
pub struct Stored {
    /// Oldest first; the last one is current.
    findings: Vec<StoredFinding>,
    observations: Vec<StoredObservation>,
    closures: Vec<Closure>,
    events: Vec<StoredEvent>,
}

impl Stored {
    /// The row version each stored finding was read at, by id.
    pub fn versions(&self) -> impl Iterator<Item = (i64, &str)> {
        self.findings
            .iter()
            .filter_map(|f| Some((f.state.id?, f.version.as_str())))
    }
}

#[derive(sqlx::FromRow)]
struct ObservationRow {
    /// 1-based position of the key, for an unowned observation.
    k: Option<i64>,
    id: i64,
    finding_id: Option<i64>,
    scan_run_id: Option<i64>,
    observed_at: DateTime<Utc>,
    state: String,
    severity: Option<String>,
    cves: Vec<String>,
    organisation_id: Option<i64>,
    network_id: Option<i64>,
    asn: Option<i64>,
    attribution: String,
}

impl ObservationRow {
    fn into_stored(self) -> Option<StoredObservation> {
        Some(StoredObservation {
            id: self.id,
            finding_id: self.finding_id,
            scan_run_id: self.scan_run_id,
            observed_at: self.observed_at,
            state: ObservationState::parse(&self.state)?,
            severity: self.severity.as_deref().and_then(Severity::parse),
            cves: self.cves,
            owner: Owner {
                organisation_id: self.organisation_id,
                network_id: self.network_id,
                asn: self.asn,
                attribution: match self.attribution.as_str() {
                    "network" => "network",
                    "asn" => "asn",
                    _ => "none",
                },
            },
        })
    }
}

const OBSERVATION_COLUMNS: &str = "o.id, o.finding_id, o.scan_run_id, o.observed_at, o.state, o.severity, \
     o.cves, o.organisation_id, o.network_id, o.asn, o.attribution";

/// Reads back everything the fold of `keys` was made from, in the caller's
/// transaction (so a batch sees what it wrote itself).
pub async fn load(
    conn: &mut PgConnection,
    keys: &[&Key],
) -> Result<HashMap<Key, Stored>, sqlx::Error> {
    let mut out: HashMap<Key, Stored> = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let (ips, ports, protocols, checks) = key_arrays(keys.iter().copied());
    // Each key's current finding, then the ones it took the key over from.
    let rows: Vec<super::store::Row> = sqlx::query_as(&format!(
        "WITH RECURSIVE chain AS (
             SELECT l.* FROM unnest($1::inet[], $2::int[], $3::text[], $4::text[]) AS k(ip, port, protocol, check_id)
              CROSS JOIN LATERAL (
                    SELECT f.ctid::text AS version, {SELECT_COLUMNS} FROM findings f
                     WHERE f.ip = k.ip AND f.port = k.port AND f.protocol = k.protocol
                       AND f.check_id = k.check_id AND f.current
                     LIMIT 1) l
             UNION ALL
             SELECT f.ctid::text AS version, {SELECT_COLUMNS} FROM findings f JOIN chain c ON f.id = c.previous_id
         )
         SELECT * FROM chain"
    ))
    .bind(&ips)
    .bind(&ports)
    .bind(&protocols)
    .bind(&checks)
    .fetch_all(&mut *conn)
    .await?;
    let mut key_of: HashMap<i64, Key> = HashMap::new();
    for stored in rows.into_iter().filter_map(super::store::from_row) {
        if let Some(id) = stored.state.id {
            key_of.insert(id, stored.key.clone());
        }
        out.entry(stored.key.clone())
            .or_default()
            .findings
            .push(stored);
    }
    for stored in out.values_mut() {
        stored
            .findings
            .sort_by_key(|f| (f.state.first_seen, f.state.id));
    }
    let ids: Vec<i64> = key_of.keys().copied().collect();

    let owned: Vec<ObservationRow> = sqlx::query_as(&format!(
        "SELECT NULL::bigint AS k, {OBSERVATION_COLUMNS} FROM observations o WHERE o.finding_id = ANY($1)"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    let unowned: Vec<ObservationRow> = sqlx::query_as(&format!(
        "SELECT k.i AS k, {OBSERVATION_COLUMNS}
           FROM unnest($1::inet[], $2::int[], $3::text[], $4::text[]) WITH ORDINALITY
                AS k(ip, port, protocol, check_id, i)
           JOIN LATERAL (
                SELECT * FROM observations o
                 WHERE o.finding_id IS NULL AND o.ip = k.ip AND o.check_id = k.check_id
                   AND o.port = k.port AND o.protocol = k.protocol) o ON true"
    ))
    .bind(&ips)
    .bind(&ports)
    .bind(&protocols)
    .bind(&checks)
    .fetch_all(&mut *conn)
    .await?;
    for row in owned.into_iter().chain(unowned) {
        let key = match (row.finding_id, row.k) {
            (Some(finding), _) => key_of.get(&finding).cloned(),
            (None, Some(k)) => usize::try_from(k)
                .ok()
                .and_then(|k| keys.get(k.checked_sub(1)?))
                .map(|k| (*k).clone()),
            (None, None) => None,
        };
        if let (Some(key), Some(o)) = (key, row.into_stored()) {
            out.entry(key).or_default().observations.push(o);
        }
    }

    let closures: Vec<(i64, i64, DateTime<Utc>, String, String)> = sqlx::query_as(
        "SELECT id, finding_id, at, actor, note FROM finding_closures WHERE finding_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for (id, finding_id, at, actor, note) in closures {
        if let Some(stored) = key_of.get(&finding_id).and_then(|k| out.get_mut(k)) {
            stored.closures.push(Closure {
                id,
                at,
                actor,
                note,
            });
        }
    }

    let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    #[allow(clippy::type_complexity)]
    let events: Vec<(
        i64,
        DateTime<Utc>,
        String,
        String,
        Option<i64>,
        Option<i64>,
        Option<String>,
        Option<String>,
    )> = sqlx::query_as(
        "SELECT finding_id, at, kind, reason, observation_id, scan_run_id, from_state, to_state
           FROM finding_events WHERE finding_id = ANY($1) AND kind = ANY($2)",
    )
    .bind(&ids)
    .bind(&kinds)
    .fetch_all(&mut *conn)
    .await?;
    for (finding_id, at, kind, reason, observation_id, scan_run_id, from, to) in events {
        let (Some(stored), Some(kind)) = (
            key_of.get(&finding_id).and_then(|k| out.get_mut(k)),
            EventKind::parse(&kind),
        ) else {
            continue;
        };
        stored.events.push(StoredEvent {
            finding_id,
            at,
            kind,
            reason,
            observation_id,
            scan_run_id,
            from_state: from.as_deref().and_then(ObservationState::parse),
            to_state: to.as_deref().and_then(ObservationState::parse),
        });
    }
    Ok(out)
}

/// A stored observation that now belongs to another finding (or none).
pub struct Move {
    pub observation_id: i64,
    pub observed_at: DateTime<Utc>,
    pub from: Option<i64>,
    /// Index into [`Replayed::findings`].
    pub to: Option<usize>,
}

/// What a replay of one key writes.
pub struct Replayed {
    /// The key's findings as they must be, oldest first; stored ones keep
    /// their id (and owner), new ones have none yet.
    pub findings: Vec<FindingState>,
    /// For each of `findings` that is stored: the finding it took the key
    /// over from, as stored.
    pub stored_previous: Vec<Option<i64>>,
    /// Stored findings the key no longer has, each with the finding (index
    /// into `findings`) it was joined to: no longer current, only a
    /// pointer.
    pub retired: Vec<(FindingState, usize)>,
    /// Stored observations whose finding changes.
    pub moves: Vec<Move>,
    /// For each new input, in the order given: its finding (index into
    /// `findings`).
    pub new_input_finding: Vec<Option<usize>>,
    /// The key's whole history when it differs from the stored one (which
    /// it then replaces); `None` when the stored history is right.
    pub events: Option<Vec<Event>>,
    /// Of those events, the ones that were not stored before (for the
    /// batch's counts).
    pub new_events: Vec<usize>,
}

/// Folds the key's stored inputs and `new` together.
pub fn replay(key: &Key, stored: &Stored, new: &[Input<'_>], coverage: &Coverage) -> Replayed {
    let mut inputs: Vec<Input<'_>> = stored
        .observations
        .iter()
        .map(|o| {
            Input::Observation(Seen {
                observation_id: o.id,
                scan_run_id: o.scan_run_id,
                observed_at: o.observed_at,
                state: o.state,
                severity: o.severity,
                cves: &o.cves,
                owner: o.owner,
            })
        })
        .collect();
    let seen_by: HashSet<i64> = stored
        .observations
        .iter()
        .filter_map(|o| o.scan_run_id)
        .chain(new.iter().filter_map(|i| match i {
            Input::Observation(o) => o.scan_run_id,
            _ => None,
        }))
        .collect();
    inputs.extend(
        coverage
            .runs(key.ip, &key.check)
            .filter(|(run, _)| !seen_by.contains(run))
            .map(|(scan_run_id, at)| Input::Absence { scan_run_id, at }),
    );
    inputs.extend(stored.closures.iter().map(|c| Input::Closure {
        closure_id: c.id,
        at: c.at,
        by: &c.actor,
        note: &c.note,
    }));
    let first_new = inputs.len();
    inputs.extend_from_slice(new);
    let folded = fold::fold(None, &inputs);

    // Each stored finding keeps its id for the finding its earliest
    // observation now belongs to; findings nobody claims are new, stored
    // ones that claim nothing are joined to another (retired).
    let mut findings = folded.findings;
    let mut claimed: Vec<Option<usize>> = vec![None; findings.len()];
    for (s, old) in stored.findings.iter().enumerate() {
        let earliest = stored
            .observations
            .iter()
            .enumerate()
            .filter(|(_, o)| o.finding_id.is_some() && o.finding_id == old.state.id)
            .min_by_key(|(_, o)| (o.observed_at, o.id))
            .and_then(|(i, _)| folded.input_finding[i]);
        if let Some(slot) = earliest.and_then(|f| claimed.get_mut(f)) {
            slot.get_or_insert(s);
        }
    }
    let mut stored_previous = Vec::with_capacity(findings.len());
    for (f, claim) in findings.iter_mut().zip(&claimed) {
        let old = claim.map(|s| &stored.findings[s]);
        if let Some(old) = old {
            f.id = old.state.id;
            f.owner = old.state.owner;
            f.dirty = *f
                != FindingState {
                    dirty: f.dirty,
                    ..old.state.clone()
                };
        }
        stored_previous.push(old.and_then(|o| o.previous_id));
    }
    // A stored finding nobody claims was joined to the finding its
    // earliest observation now belongs to (or the key's current one).
    let retired: Vec<(FindingState, usize)> = stored
        .findings
        .iter()
        .enumerate()
        .filter(|(s, _)| !claimed.contains(&Some(*s)))
        .map(|(_, old)| {
            let into = stored
                .observations
                .iter()
                .enumerate()
                .filter(|(_, o)| o.finding_id.is_some() && o.finding_id == old.state.id)
                .min_by_key(|(_, o)| (o.observed_at, o.id))
                .and_then(|(i, _)| folded.input_finding[i])
                .unwrap_or(findings.len().saturating_sub(1));
            // Not open any more, so that nothing counting open findings
            // counts it; `merged_into` says why.
            let state = FindingState {
                current: false,
                status: super::fold::Status::Resolved,
                dirty: true,
                ..old.state.clone()
            };
            (state, into)
        })
        .collect();

    let moves = stored
        .observations
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let to = folded.input_finding[i];
            let to_id = to.and_then(|t| findings[t].id);
            (to.is_none() != o.finding_id.is_none() || to_id != o.finding_id).then_some(Move {
                observation_id: o.id,
                observed_at: o.observed_at,
                from: o.finding_id,
                to,
            })
        })
        .collect();

    let as_stored = |e: &Event| {
        Some(StoredEvent {
            finding_id: findings[e.finding].id?,
            at: e.at,
            kind: e.kind,
            reason: e.reason.clone(),
            observation_id: e.observation_id,
            scan_run_id: e.scan_run_id,
            from_state: e.from_state,
            to_state: e.to_state,
        })
    };
    let before: HashSet<&StoredEvent> = stored.events.iter().collect();
    let mut new_events = Vec::new();
    let mut after = HashSet::new();
    for (i, e) in folded.events.iter().enumerate() {
        match as_stored(e) {
            Some(s) if before.contains(&s) => {
                after.insert(s);
            }
            _ => new_events.push(i),
        }
    }
    let unchanged = new_events.is_empty() && after.len() == before.len() && retired.is_empty();
    Replayed {
        findings,
        stored_previous,
        retired,
        moves,
        new_input_finding: folded.input_finding[first_new..].to_vec(),
        events: (!unchanged).then_some(folded.events),
        new_events,
    }
}
