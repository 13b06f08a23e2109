//! Where observations become findings: the lifecycle rules, as a pure
//! function from (the current finding of a key, that key's new observations)
//! to (the finding states after them, the history events they cause).
//!
//! Rules, after CISA's Cyber Hygiene:
//! - a positive observation (vulnerable, compromised, or an exposure seen as
//!   `unknown`) of a key without a finding opens one; `not_vulnerable` alone
//!   opens nothing;
//! - on an open finding, `not_vulnerable` resolves it; a different
//!   vulnerable/compromised state changes it, a rise to `compromised` is an
//!   escalation; `unknown` (cannot tell) changes nothing;
//! - on a resolved finding, a vulnerable/compromised observation (or any
//!   positive one for an exposure finding) within [`REOPEN_WINDOW_DAYS`] of
//!   the resolution reopens it; later, a new finding starts and the old one
//!   stops being current;
//! - an observation older than the finding's `last_seen` (a late one) never
//!   moves the finding backwards: it can only widen `first_seen` and raise the
//!   worst state seen.

use chrono::{DateTime, Duration, Utc};

use crate::ingest::observation::{ObservationState, Severity};

pub const REOPEN_WINDOW_DAYS: i64 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Status::Open),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

/// Who a finding was attributed to when it was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub organisation_id: Option<i64>,
    pub network_id: Option<i64>,
    pub asn: Option<i64>,
    /// `network`, `asn` or `none`.
    pub attribution: &'static str,
}

impl Default for Owner {
    /// Unattributed.
    fn default() -> Self {
        Self {
            organisation_id: None,
            network_id: None,
            asn: None,
            attribution: "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FindingState {
    /// `None` until the finding is stored.
    pub id: Option<i64>,
    pub current: bool,
    pub status: Status,
    pub state: ObservationState,
    pub worst_state: ObservationState,
    pub severity: Option<Severity>,
    pub cves: Vec<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub owner: Owner,
    pub last_observation_id: Option<i64>,
    /// Set by [`fold`] when anything above changed.
    pub dirty: bool,
}

/// What the fold needs of one observation.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    pub observation_id: i64,
    pub observed_at: DateTime<Utc>,
    pub state: ObservationState,
    pub severity: Option<Severity>,
    pub cves: &'a [String],
    pub owner: Owner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Opened,
    Changed,
    Escalated,
    Resolved,
    Reopened,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Changed => "changed",
            EventKind::Escalated => "escalated",
            EventKind::Resolved => "resolved",
            EventKind::Reopened => "reopened",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Index into [`Folded::findings`].
    pub finding: usize,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub reason: String,
    pub observation_id: Option<i64>,
    pub from_state: Option<ObservationState>,
    pub to_state: Option<ObservationState>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Folded {
    /// The existing finding first (if there was one), then any new ones.
    pub findings: Vec<FindingState>,
    pub events: Vec<Event>,
    /// For each observation, in input order: the finding it belongs to.
    pub observation_finding: Vec<Option<usize>>,
}

fn positive(s: ObservationState) -> bool {
    s != ObservationState::NotVulnerable
}

fn merge_cves(into: &mut Vec<String>, cves: &[String]) -> bool {
    let mut changed = false;
    for c in cves {
        if !into.contains(c) {
            into.push(c.clone());
            changed = true;
        }
    }
    changed
}

fn open_finding(o: &Seen<'_>) -> FindingState {
    FindingState {
        id: None,
        current: true,
        status: Status::Open,
        state: o.state,
        worst_state: o.state,
        severity: o.severity,
        cves: o.cves.to_vec(),
        first_seen: o.observed_at,
        last_seen: o.observed_at,
        resolved_at: None,
        escalated_at: (o.state == ObservationState::Compromised).then_some(o.observed_at),
        owner: o.owner,
        last_observation_id: Some(o.observation_id),
        dirty: true,
    }
}

/// Folds `seen` (one key's observations, any order) into `existing`.
pub fn fold(existing: Option<FindingState>, seen: &[Seen<'_>]) -> Folded {
    let mut out = Folded {
        findings: existing.into_iter().collect(),
        events: Vec::new(),
        observation_finding: vec![None; seen.len()],
    };
    let mut order: Vec<usize> = (0..seen.len()).collect();
    // Stable: equal times keep input order.
    order.sort_by_key(|&i| seen[i].observed_at);

    for i in order {
        let o = &seen[i];
        let Some(cur) = out.findings.len().checked_sub(1) else {
            if positive(o.state) {
                out.findings.push(open_finding(o));
                out.events.push(Event {
                    finding: 0,
                    at: o.observed_at,
                    kind: EventKind::Opened,
                    reason: format!("first seen {}", o.state),
                    observation_id: Some(o.observation_id),
                    from_state: None,
                    to_state: Some(o.state),
                });
                out.observation_finding[i] = Some(0);
            }
            continue;
        };
        out.observation_finding[i] = Some(cur);
        let f = &mut out.findings[cur];

        if o.observed_at < f.last_seen {
            // Late: may widen the past, never moves the finding backwards.
            if o.observed_at < f.first_seen && positive(o.state) {
                f.first_seen = o.observed_at;
                f.dirty = true;
            }
            if o.state > f.worst_state && o.state >= ObservationState::Vulnerable {
                let from = f.worst_state;
                f.worst_state = o.state;
                f.dirty = true;
                if o.state == ObservationState::Compromised {
                    f.escalated_at.get_or_insert(o.observed_at);
                    out.events.push(Event {
                        finding: cur,
                        at: o.observed_at,
                        kind: EventKind::Escalated,
                        reason: "a late observation shows signs of compromise".to_owned(),
                        observation_id: Some(o.observation_id),
                        from_state: Some(from),
                        to_state: Some(o.state),
                    });
                }
            }
            continue;
        }

        if o.observed_at > f.last_seen {
            f.last_seen = o.observed_at;
            f.dirty = true;
        }
        if positive(o.state) {
            f.last_observation_id = Some(o.observation_id);
        }
        if o.severity > f.severity {
            f.severity = o.severity;
            f.dirty = true;
        }
        if positive(o.state) && merge_cves(&mut f.cves, o.cves) {
            f.dirty = true;
        }

        match (f.status, o.state) {
            (Status::Open, ObservationState::NotVulnerable) => {
                let from = f.state;
                f.status = Status::Resolved;
                f.state = o.state;
                f.resolved_at = Some(o.observed_at);
                f.dirty = true;
                out.events.push(Event {
                    finding: cur,
                    at: o.observed_at,
                    kind: EventKind::Resolved,
                    reason: "observed not vulnerable".to_owned(),
                    observation_id: Some(o.observation_id),
                    from_state: Some(from),
                    to_state: Some(o.state),
                });
            }
            (Status::Open, ObservationState::Unknown) => {}
            (Status::Open, new) => {
                if new != f.state {
                    let from = f.state;
                    let escalation = new == ObservationState::Compromised;
                    f.state = new;
                    f.worst_state = f.worst_state.max(new);
                    f.dirty = true;
                    if escalation {
                        f.escalated_at = Some(o.observed_at);
                    }
                    out.events.push(Event {
                        finding: cur,
                        at: o.observed_at,
                        kind: if escalation {
                            EventKind::Escalated
                        } else {
                            EventKind::Changed
                        },
                        reason: if escalation {
                            "signs of compromise observed".to_owned()
                        } else {
                            format!("state changed from {from} to {new}")
                        },
                        observation_id: Some(o.observation_id),
                        from_state: Some(from),
                        to_state: Some(new),
                    });
                }
            }
            (Status::Resolved, ObservationState::NotVulnerable) => {}
            (Status::Resolved, new) => {
                let relevant = new >= ObservationState::Vulnerable
                    || f.worst_state == ObservationState::Unknown;
                if !relevant {
                    continue;
                }
                let resolved_at = f.resolved_at.unwrap_or(f.last_seen);
                let since = o.observed_at - resolved_at;
                if since <= Duration::days(REOPEN_WINDOW_DAYS) {
                    let from = f.state;
                    f.status = Status::Open;
                    f.state = new;
                    f.resolved_at = None;
                    if new == ObservationState::Compromised && f.worst_state < new {
                        f.escalated_at = Some(o.observed_at);
                    }
                    f.worst_state = f.worst_state.max(new);
                    f.dirty = true;
                    out.events.push(Event {
                        finding: cur,
                        at: o.observed_at,
                        kind: EventKind::Reopened,
                        reason: format!(
                            "seen {new} again {} day(s) after it was resolved",
                            since.num_days()
                        ),
                        observation_id: Some(o.observation_id),
                        from_state: Some(from),
                        to_state: Some(new),
                    });
                } else {
                    f.current = false;
                    f.dirty = true;
                    let days = since.num_days();
                    out.findings.push(open_finding(o));
                    let new_index = out.findings.len() - 1;
                    out.observation_finding[i] = Some(new_index);
                    out.events.push(Event {
                        finding: new_index,
                        at: o.observed_at,
                        kind: EventKind::Opened,
                        reason: format!(
                            "seen {new} {days} days after the previous finding was resolved \
                             (more than {REOPEN_WINDOW_DAYS}); a new finding starts"
                        ),
                        observation_id: Some(o.observation_id),
                        from_state: None,
                        to_state: Some(new),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ObservationState::*;

    fn t(day: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_614_902_400 + day * 86_400, 0).unwrap()
    }

    fn seen(id: i64, day: i64, state: ObservationState) -> Seen<'static> {
        Seen {
            observation_id: id,
            observed_at: t(day),
            state,
            severity: None,
            cves: &[],
            owner: Owner::default(),
        }
    }

    fn kinds(f: &Folded) -> Vec<EventKind> {
        f.events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn opens_then_resolves_then_reopens() {
        let r = fold(
            None,
            &[
                seen(1, 0, Vulnerable),
                seen(2, 1, NotVulnerable),
                seen(3, 30, Vulnerable),
            ],
        );
        assert_eq!(r.findings.len(), 1);
        assert_eq!(
            kinds(&r),
            [EventKind::Opened, EventKind::Resolved, EventKind::Reopened]
        );
        assert_eq!(r.findings[0].status, Status::Open);
        assert_eq!(r.observation_finding, [Some(0), Some(0), Some(0)]);
    }

    #[test]
    fn not_vulnerable_alone_opens_nothing() {
        let r = fold(None, &[seen(1, 0, NotVulnerable)]);
        assert!(r.findings.is_empty());
        assert_eq!(r.observation_finding, [None]);
    }

    #[test]
    fn after_ninety_days_a_new_finding_starts() {
        let r = fold(
            None,
            &[
                seen(1, 0, Vulnerable),
                seen(2, 1, NotVulnerable),
                seen(3, 92, Vulnerable),
            ],
        );
        assert_eq!(r.findings.len(), 2);
        assert!(!r.findings[0].current);
        assert_eq!(r.findings[0].status, Status::Resolved);
        assert!(r.findings[1].current);
        assert_eq!(r.findings[1].first_seen, t(92));
        assert_eq!(r.observation_finding, [Some(0), Some(0), Some(1)]);
    }

    #[test]
    fn late_observation_never_moves_backwards() {
        let r = fold(None, &[seen(1, 5, Vulnerable), seen(2, 6, NotVulnerable)]);
        let resolved = r.findings[0].clone();
        // A vulnerable observation from before the fix arrives late.
        let mut late = fold(
            Some(FindingState {
                dirty: false,
                ..resolved
            }),
            &[seen(3, 2, Vulnerable)],
        );
        assert_eq!(late.findings[0].status, Status::Resolved);
        assert_eq!(late.findings[0].first_seen, t(2));
        assert!(late.events.is_empty());
        // And a late not_vulnerable does not resolve an open finding.
        let open = fold(None, &[seen(1, 5, Vulnerable)]).findings.remove(0);
        late = fold(Some(open), &[seen(2, 1, NotVulnerable)]);
        assert_eq!(late.findings[0].status, Status::Open);
    }

    #[test]
    fn escalation_is_an_event() {
        let r = fold(
            None,
            &[
                seen(1, 0, Vulnerable),
                seen(2, 1, Compromised),
                seen(3, 2, Vulnerable),
            ],
        );
        assert_eq!(
            kinds(&r),
            [EventKind::Opened, EventKind::Escalated, EventKind::Changed]
        );
        let f = &r.findings[0];
        assert_eq!(f.state, Vulnerable);
        assert_eq!(f.worst_state, Compromised);
        assert_eq!(f.escalated_at, Some(t(1)));
    }

    #[test]
    fn unknown_does_not_downgrade_or_reopen_a_vulnerability() {
        let r = fold(
            None,
            &[
                seen(1, 0, Vulnerable),
                seen(2, 1, Unknown),
                seen(3, 2, NotVulnerable),
                seen(4, 3, Unknown),
            ],
        );
        assert_eq!(kinds(&r), [EventKind::Opened, EventKind::Resolved]);
        assert_eq!(r.findings[0].status, Status::Resolved);
        // An exposure finding does reopen on an exposure.
        let r = fold(
            None,
            &[
                seen(1, 0, Unknown),
                seen(2, 1, NotVulnerable),
                seen(3, 2, Unknown),
            ],
        );
        assert_eq!(
            kinds(&r),
            [EventKind::Opened, EventKind::Resolved, EventKind::Reopened]
        );
    }

    #[test]
    fn same_observation_twice_changes_nothing() {
        let first = fold(None, &[seen(1, 0, Vulnerable)]);
        let mut existing = first.findings[0].clone();
        existing.dirty = false;
        existing.id = Some(10);
        let again = fold(Some(existing), &[seen(2, 0, Vulnerable)]);
        assert!(again.events.is_empty());
        assert!(!again.findings[0].dirty);
    }
}
