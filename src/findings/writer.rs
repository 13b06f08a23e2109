//! Folding new inputs into stored findings and writing the result, for
//! everyone who changes findings: ingest (observations), finishing a scan
//! run (absences the run's SQL could not fold in place) and analysts
//! (closures). Per key: fold in place when that is exact
//! ([`fold::fold_more`]), else replay the key's whole input set
//! ([`super::replay`]); then one write of every change (findings updated
//! and inserted, observations moved between findings, history appended or
//! rewritten).
//!
//! The caller holds the findings writer lock and a savepoint: `Ok(None)`
//! means a concurrent transaction changed one of the findings since they
//! were read (an update missed its row version, or an insert met a new
//! current finding), and the caller rolls back and folds again.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::coverage::Coverage;
use super::fold::{self, EventKind, FindingState, Folded, Input, SortKey};
use super::replay::{self, Move, Replayed};
use super::store::{self, Current, Key, NewEvent, NewFinding, Update};
use crate::db::ids::{self, IdSeries};

/// How many history events of each kind a write added.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EventCounts {
    pub opened: u64,
    pub reopened: u64,
    pub changed: u64,
    pub escalated: u64,
    pub resolved: u64,
    pub missed: u64,
    pub closed: u64,
}

impl EventCounts {
    fn count(&mut self, kind: EventKind) {
        match kind {
            EventKind::Opened => self.opened += 1,
            EventKind::Reopened => self.reopened += 1,
            EventKind::Changed => self.changed += 1,
            EventKind::Escalated => self.escalated += 1,
            EventKind::Resolved => self.resolved += 1,
            EventKind::Missed => self.missed += 1,
            EventKind::Closed => self.closed += 1,
        }
    }

    pub fn any(&self) -> bool {
        *self != Self::default()
    }
}

/// One key and its new inputs.
pub struct Group<'a> {
    pub key: &'a Key,
    pub inputs: Vec<Input<'a>>,
}

/// What a write did.
#[derive(Default)]
pub struct Written<'k> {
    /// Per group, per input: the finding it belongs to.
    pub input_finding: Vec<Vec<Option<i64>>>,
    pub counts: EventCounts,
    /// Findings an input resolved (by id).
    pub resolved: Vec<i64>,
    /// Open findings a scan run's absence left open (compromised).
    pub kept_open: Vec<i64>,
    /// Keys whose findings were written, or that got an unowned
    /// observation: a batch reads them again in its own transaction.
    pub written: Vec<&'k Key>,
    /// Keys whose whole input set was folded again.
    pub replayed: usize,
}

/// How one group was folded.
enum Plan {
    InPlace(Folded),
    Replay(Replayed),
}

impl Plan {
    fn findings(&self) -> &[FindingState] {
        match self {
            Plan::InPlace(f) => &f.findings,
            Plan::Replay(r) => &r.findings,
        }
    }
}

/// Folds `groups` into what `current` read of them and writes the result.
pub async fn write<'k>(
    conn: &mut PgConnection,
    groups: &[Group<'k>],
    current: Current,
    coverage: &Coverage,
) -> Result<Option<Written<'k>>, sqlx::Error> {
    let Current {
        findings: mut existing,
        mut versions,
        unowned,
    } = current;
    let mut plans: Vec<Option<Plan>> = Vec::with_capacity(groups.len());
    let mut to_replay: Vec<&Key> = Vec::new();
    for g in groups {
        let folded = match existing.remove(g.key) {
            Some(f) => fold::fold_more(f, &g.inputs),
            None => fold_new(g, unowned.get(g.key).copied(), coverage),
        };
        if folded.is_none() {
            to_replay.push(g.key);
        }
        plans.push(folded.map(Plan::InPlace));
    }
    if !to_replay.is_empty() {
        let mut stored = replay::load(conn, &to_replay).await?;
        for (g, plan) in groups.iter().zip(plans.iter_mut()) {
            if plan.is_some() {
                continue;
            }
            let key_stored = stored.remove(g.key).unwrap_or_default();
            versions.extend(key_stored.versions().map(|(id, v)| (id, v.to_owned())));
            *plan = Some(Plan::Replay(replay::replay(
                g.key,
                &key_stored,
                &g.inputs,
                coverage,
            )));
        }
    }
    let plans: Vec<Plan> = plans.into_iter().flatten().collect();

    let ids = assign_ids(conn, &plans).await?;
    if !write_findings(conn, &plans, &ids, &versions).await? {
        return Ok(None);
    }
    if !insert_new(conn, groups, &plans, &ids).await? {
        return Ok(None);
    }
    let mut written = Written {
        replayed: to_replay.len(),
        ..Written::default()
    };
    write_moves_and_history(conn, groups, &plans, &ids, &mut written).await?;
    Ok(Some(written))
}

/// A key without a current finding: its stored inputs are `not_vulnerable`
/// observations and absences, which change nothing unless they sort after
/// what arrives (then the key is replayed: `None`).
fn fold_new(g: &Group<'_>, unowned: Option<DateTime<Utc>>, coverage: &Coverage) -> Option<Folded> {
    let first = g.inputs.iter().map(Input::key).min()?;
    let after_first = |at: DateTime<Utc>, rank| SortKey { at, rank } > first;
    // `not_vulnerable` sorts at rank 1, an absence at 0.
    if unowned.is_some_and(|at| after_first(at, 1))
        || coverage
            .latest_after(g.key.ip, &g.key.check, first.at)
            .is_some_and(|at| after_first(at, 0))
    {
        return None;
    }
    Some(fold::fold(None, &g.inputs))
}

/// Every finding's id: stored ones keep theirs, new ones get the next of
/// a range reserved for them, in group order.
async fn assign_ids(conn: &mut PgConnection, plans: &[Plan]) -> Result<Vec<Vec<i64>>, sqlx::Error> {
    let fresh: usize = plans
        .iter()
        .map(|p| p.findings().iter().filter(|s| s.id.is_none()).count())
        .sum();
    let mut next = if fresh == 0 {
        0
    } else {
        ids::reserve(conn, IdSeries::Findings, fresh).await?
    };
    Ok(plans
        .iter()
        .map(|p| {
            p.findings()
                .iter()
                .map(|s| {
                    s.id.unwrap_or_else(|| {
                        next += 1;
                        next - 1
                    })
                })
                .collect()
        })
        .collect())
}

/// Updates of stored findings, in id order like every other writer's (so
/// concurrent updates queue instead of deadlocking); those that stop
/// being current first.
async fn write_findings(
    conn: &mut PgConnection,
    plans: &[Plan],
    ids: &[Vec<i64>],
    versions: &HashMap<i64, String>,
) -> Result<bool, sqlx::Error> {
    let mut updates: Vec<Update<'_>> = Vec::new();
    for (plan, ids) in plans.iter().zip(ids) {
        match plan {
            Plan::InPlace(f) => {
                updates.extend(f.findings.iter().filter(|s| s.id.is_some() && s.dirty).map(
                    |state| Update {
                        state,
                        previous_id: None,
                        merged_into: None,
                    },
                ))
            }
            Plan::Replay(r) => {
                for (i, state) in r.findings.iter().enumerate() {
                    let previous = i.checked_sub(1).map(|p| ids[p]);
                    if state.id.is_some() && (state.dirty || r.stored_previous[i] != previous) {
                        updates.push(Update {
                            state,
                            previous_id: Some(previous),
                            merged_into: None,
                        });
                    }
                }
                updates.extend(r.retired.iter().map(|(state, into)| Update {
                    state,
                    previous_id: None,
                    merged_into: ids.get(*into).copied(),
                }));
            }
        }
    }
    updates.sort_unstable_by_key(|u| u.state.id);
    store::update_existing(conn, &updates, versions).await
}

/// Inserts the new findings (COPY). `false` when a concurrent batch
/// created one of the same current findings first.
async fn insert_new(
    conn: &mut PgConnection,
    groups: &[Group<'_>],
    plans: &[Plan],
    ids: &[Vec<i64>],
) -> Result<bool, sqlx::Error> {
    let mut rows = Vec::new();
    for ((g, plan), ids) in groups.iter().zip(plans).zip(ids) {
        for (i, state) in plan.findings().iter().enumerate() {
            if state.id.is_none() {
                rows.push(NewFinding {
                    id: ids[i],
                    key: g.key,
                    state,
                    previous_id: i.checked_sub(1).map(|p| ids[p]),
                });
            }
        }
    }
    store::copy_new(conn, &rows).await
}

async fn write_moves_and_history<'k>(
    conn: &mut PgConnection,
    groups: &[Group<'k>],
    plans: &[Plan],
    ids: &[Vec<i64>],
    written: &mut Written<'k>,
) -> Result<(), sqlx::Error> {
    let mut events = Vec::new();
    let mut rewritten: Vec<i64> = Vec::new();
    let mut moves: Vec<(&Move, &Key, Option<i64>)> = Vec::new();
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for ((g, plan), ids) in groups.iter().zip(plans).zip(ids) {
        let id_of = |i: Option<usize>| i.and_then(|i| ids.get(i).copied());
        let (input_finding, folded_events, counted): (
            &[Option<usize>],
            &[fold::Event],
            Vec<usize>,
        ) = match plan {
            Plan::InPlace(f) => (&f.input_finding, &f.events, (0..f.events.len()).collect()),
            Plan::Replay(r) => {
                moves.extend(r.moves.iter().map(|m| (m, g.key, id_of(m.to))));
                if let Some(events) = &r.events {
                    rewritten.extend(ids.iter().copied());
                    for (state, into) in &r.retired {
                        if let (Some(id), Some(into)) = (state.id, ids.get(*into)) {
                            rewritten.push(id);
                            merged.push((id, *into));
                        }
                    }
                    (&r.new_input_finding, events, r.new_events.clone())
                } else {
                    (&r.new_input_finding, &[], Vec::new())
                }
            }
        };
        written
            .input_finding
            .push(input_finding.iter().map(|&i| id_of(i)).collect());
        for i in counted {
            let e = &folded_events[i];
            written.counts.count(e.kind);
            let id = id_of(Some(e.finding));
            match (e.kind, id) {
                (EventKind::Resolved | EventKind::Closed, Some(id)) => written.resolved.push(id),
                (EventKind::Missed, Some(id)) => written.kept_open.push(id),
                _ => {}
            }
        }
        for e in folded_events {
            if let Some(finding_id) = id_of(Some(e.finding)) {
                events.push(NewEvent {
                    finding_id,
                    event: e,
                });
            }
        }
        let wrote = plan.findings().iter().any(|s| s.id.is_none() || s.dirty)
            || input_finding.iter().any(Option::is_none)
            || matches!(plan, Plan::Replay(_));
        if wrote {
            written.written.push(g.key);
        }
    }
    store::move_observations(conn, &moves).await?;
    store::delete_history(conn, &rewritten).await?;
    store::insert_events(conn, &events).await?;
    store::insert_merged(conn, &merged).await?;
    Ok(())
}
