//! Where observations become findings: the lifecycle rules, as a pure
//! function from a key's inputs to its findings and their history.
//!
//! A key's inputs are its observations, the finished scan runs that covered
//! it without seeing it ([`Input::Absence`]) and analysts' closures. Its
//! findings are a function of the *set* of them: [`fold`] sorts them by
//! [`SortKey`] (time, then kind) and applies the rules in that order, so
//! arrival order and chunking never change the outcome. Folding new inputs
//! into stored findings ([`fold_more`]) gives the same result as folding
//! the whole set again, or says it cannot, and then the caller replays the
//! key's whole set (`findings::replay`).
//!
//! Rules, after CISA's Cyber Hygiene:
//! - a positive observation (vulnerable, compromised, or an exposure seen as
//!   `unknown`) of a key without a finding opens one; `not_vulnerable` alone
//!   opens nothing;
//! - on an open finding, `not_vulnerable` resolves it; a different
//!   vulnerable/compromised state changes it, a rise to `compromised` is an
//!   escalation; `unknown` (cannot tell) changes nothing;
//! - a scan run that covered an open finding without seeing it resolves it,
//!   unless signs of compromise were seen since it opened: a server taken
//!   off the net is not a cleaned server, so it stays open, marked as not
//!   seen since its last sighting;
//! - an analyst's closure (with a note) resolves an open finding;
//! - on a resolved finding, a vulnerable/compromised observation (or any
//!   positive one for an exposure finding) within [`REOPEN_WINDOW_DAYS`] of
//!   the resolution reopens it; later, a new finding starts and the old one
//!   stops being current.

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

/// Where an input sorts among the inputs of its key: by time, then by
/// kind. At one instant a scan run's absence comes first, then
/// observations from the best to the worst state, then an analyst's
/// closure: so a compromise and a clean bill seen at the same second leave
/// the finding open, and an analyst closes what was seen when they closed.
/// Inputs with equal keys change a finding only once, in any order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    pub at: DateTime<Utc>,
    pub rank: i16,
}

impl SortKey {
    const ABSENCE: i16 = 0;
    const CLOSURE: i16 = 5;

    fn observation(at: DateTime<Utc>, state: ObservationState) -> Self {
        let rank = match state {
            ObservationState::NotVulnerable => 1,
            ObservationState::Unknown => 2,
            ObservationState::Vulnerable => 3,
            ObservationState::Compromised => 4,
        };
        Self { at, rank }
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
    /// Sorted, so that the order they were seen in does not matter.
    pub cves: Vec<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Signs of compromise first seen since the finding last opened; what
    /// keeps a scan run's absence from resolving it. Cleared on resolution.
    pub escalated_at: Option<DateTime<Utc>>,
    /// The latest covering scan run that did not see this open, compromised
    /// finding ("not seen since `last_seen`").
    pub missed_at: Option<DateTime<Utc>>,
    pub owner: Owner,
    pub last_observation_id: Option<i64>,
    /// The last input folded into the key (this finding's or an earlier
    /// one's).
    pub folded: SortKey,
    /// The last input that changed this finding (caused an event).
    pub changed: SortKey,
    /// Set by the fold when anything above changed.
    pub dirty: bool,
}

impl FindingState {
    /// Whether absence must leave this finding open: signs of compromise
    /// were seen since it opened.
    pub fn compromised(&self) -> bool {
        self.status == Status::Open
            && (self.escalated_at.is_some() || self.state == ObservationState::Compromised)
    }

    /// Not seen since `last_seen` by a scan run that covered it.
    pub fn not_seen_since(&self) -> Option<DateTime<Utc>> {
        self.missed_at
            .filter(|missed| *missed > self.last_seen)
            .map(|_| self.last_seen)
    }
}

/// What the fold needs of one observation.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    pub observation_id: i64,
    pub scan_run_id: Option<i64>,
    pub observed_at: DateTime<Utc>,
    pub state: ObservationState,
    pub severity: Option<Severity>,
    pub cves: &'a [String],
    pub owner: Owner,
}

/// One input of a key's fold.
#[derive(Debug, Clone)]
pub enum Input<'a> {
    Observation(Seen<'a>),
    /// A finished scan run whose checks and scope covered the key stored
    /// no observation of it.
    Absence {
        scan_run_id: i64,
        at: DateTime<Utc>,
    },
    /// An analyst closed the key's finding with a note.
    Closure {
        closure_id: i64,
        at: DateTime<Utc>,
        by: &'a str,
        note: &'a str,
    },
}

impl Input<'_> {
    pub fn key(&self) -> SortKey {
        match self {
            Input::Observation(o) => SortKey::observation(o.observed_at, o.state),
            Input::Absence { at, .. } => SortKey {
                at: *at,
                rank: SortKey::ABSENCE,
            },
            Input::Closure { at, .. } => SortKey {
                at: *at,
                rank: SortKey::CLOSURE,
            },
        }
    }

    /// A total order: equal keys by the input's own id, so that which of
    /// two equal observations counts as the last one seen is settled too.
    fn order(&self) -> (SortKey, i64) {
        let id = match self {
            Input::Observation(o) => o.observation_id,
            Input::Absence { scan_run_id, .. } => *scan_run_id,
            Input::Closure { closure_id, .. } => *closure_id,
        };
        (self.key(), id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Opened,
    Changed,
    Escalated,
    Resolved,
    Reopened,
    /// A covering scan run did not see an open, compromised finding.
    Missed,
    /// An analyst closed it.
    Closed,
}

impl EventKind {
    pub const ALL: [EventKind; 7] = [
        EventKind::Opened,
        EventKind::Changed,
        EventKind::Escalated,
        EventKind::Resolved,
        EventKind::Reopened,
        EventKind::Missed,
        EventKind::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Changed => "changed",
            EventKind::Escalated => "escalated",
            EventKind::Resolved => "resolved",
            EventKind::Reopened => "reopened",
            EventKind::Missed => "missed",
            EventKind::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Event {
    /// Index into [`Folded::findings`].
    pub finding: usize,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub reason: String,
    pub observation_id: Option<i64>,
    pub scan_run_id: Option<i64>,
    pub from_state: Option<ObservationState>,
    pub to_state: Option<ObservationState>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Folded {
    /// The existing finding first (if there was one), then any new ones.
    pub findings: Vec<FindingState>,
    pub events: Vec<Event>,
    /// For each input, in input order: the finding it belongs to.
    pub input_finding: Vec<Option<usize>>,
}

fn positive(s: ObservationState) -> bool {
    s != ObservationState::NotVulnerable
}

fn merge_cves(into: &mut Vec<String>, cves: &[String]) -> bool {
    let mut changed = false;
    for c in cves {
        if let Err(at) = into.binary_search(c) {
            into.insert(at, c.clone());
            changed = true;
        }
    }
    changed
}

fn open_finding(o: &Seen<'_>, key: SortKey) -> FindingState {
    let mut cves = Vec::new();
    merge_cves(&mut cves, o.cves);
    FindingState {
        id: None,
        current: true,
        status: Status::Open,
        state: o.state,
        worst_state: o.state,
        severity: o.severity,
        cves,
        first_seen: o.observed_at,
        last_seen: o.observed_at,
        resolved_at: None,
        escalated_at: (o.state == ObservationState::Compromised).then_some(o.observed_at),
        missed_at: None,
        owner: o.owner,
        last_observation_id: Some(o.observation_id),
        folded: key,
        changed: key,
        dirty: true,
    }
}

/// Folds a key's inputs (any order) into its findings. `existing` is the
/// key's current finding, which must have folded only inputs sorting
/// before these (else use [`fold_more`]); `None` folds from nothing.
pub fn fold(existing: Option<FindingState>, inputs: &[Input<'_>]) -> Folded {
    let mut out = Folded {
        findings: existing.into_iter().collect(),
        events: Vec::new(),
        input_finding: vec![None; inputs.len()],
    };
    for i in sorted(inputs) {
        step(&mut out, i, &inputs[i]);
    }
    out
}

/// Folds new inputs into a key's stored current finding, when that gives
/// what folding the key's whole input set again would give: every input
/// sorts after what was folded, or, sorting after the finding's last
/// change, changes nothing but what commutes (times seen, CVEs, severity).
/// `None`: replay the key's whole set.
pub fn fold_more(existing: FindingState, inputs: &[Input<'_>]) -> Option<Folded> {
    let (folded, changed) = (existing.folded, existing.changed);
    let mut out = Folded {
        findings: vec![existing],
        events: Vec::new(),
        input_finding: vec![None; inputs.len()],
    };
    for i in sorted(inputs) {
        let key = inputs[i].key();
        // Equal to the last change: right after it, where the finding was
        // as it is now, for an observation (their ids, which order equal
        // keys, grow with arrival); a scan run's id says nothing of when it
        // finished, so an absence there might be the one that changed it.
        if key == changed && matches!(inputs[i], Input::Absence { .. }) {
            return None;
        }
        if key >= folded {
            step(&mut out, i, &inputs[i]);
            continue;
        }
        if key < changed {
            return None;
        }
        let before = (out.findings.len(), out.events.len());
        let (status, state) = (out.findings[0].status, out.findings[0].state);
        step(&mut out, i, &inputs[i]);
        let f = &out.findings[0];
        if (out.findings.len(), out.events.len()) != before
            || (f.status, f.state) != (status, state)
        {
            return None;
        }
    }
    Some(out)
}

/// Input indices in fold order.
fn sorted(inputs: &[Input<'_>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    order.sort_by_key(|&i| inputs[i].order());
    order
}

/// Applies one input. [`fold_more`] also applies inputs that sort before
/// some already folded, when they change nothing but what commutes.
fn step(out: &mut Folded, i: usize, input: &Input<'_>) {
    let key = input.key();
    let current = out
        .findings
        .last()
        .is_some_and(|f| f.current)
        .then(|| out.findings.len() - 1);
    let Some(cur) = current else {
        if let Input::Observation(o) = input {
            if positive(o.state) {
                out.findings.push(open_finding(o, key));
                let index = out.findings.len() - 1;
                out.events.push(Event {
                    finding: index,
                    at: o.observed_at,
                    kind: EventKind::Opened,
                    reason: format!("first seen {}", o.state),
                    observation_id: Some(o.observation_id),
                    scan_run_id: o.scan_run_id,
                    from_state: None,
                    to_state: Some(o.state),
                });
                out.input_finding[i] = Some(index);
            }
        }
        return;
    };
    out.input_finding[i] = Some(cur);
    let events_before = out.events.len();
    match input {
        Input::Observation(o) => observe(out, cur, i, o, key),
        Input::Absence { scan_run_id, at } => absent(out, cur, *scan_run_id, *at),
        Input::Closure { by, note, at, .. } => close(out, cur, by, note, *at),
    }
    let last = out.findings.len() - 1;
    let f = &mut out.findings[last];
    if key > f.folded {
        f.folded = key;
        f.dirty = true;
    }
    if out.events.len() > events_before && key > f.changed {
        f.changed = key;
        f.dirty = true;
    }
}

/// An event on finding `finding` caused by observation `o`.
fn seen_event(
    finding: usize,
    o: &Seen<'_>,
    kind: EventKind,
    reason: String,
    from: ObservationState,
) -> Event {
    Event {
        finding,
        at: o.observed_at,
        kind,
        reason,
        observation_id: Some(o.observation_id),
        scan_run_id: o.scan_run_id,
        from_state: Some(from),
        to_state: Some(o.state),
    }
}

fn observe(out: &mut Folded, cur: usize, i: usize, o: &Seen<'_>, key: SortKey) {
    // The observation behind what the finding shows (its evidence): the
    // one that last changed it, or a later positive one; of several seen at
    // one instant, the first to arrive (so a rescan's duplicate writes
    // nothing).
    let later = o.observed_at > out.findings[cur].last_seen;
    let events = out.events.len();
    transition(out, cur, i, o, key);
    // One that starts a new finding belongs to that one alone.
    if out.input_finding[i] != Some(cur) {
        return;
    }
    let changed = out.events.len() > events;
    let f = &mut out.findings[cur];
    if positive(o.state) {
        if o.severity > f.severity {
            f.severity = o.severity;
            f.dirty = true;
        }
        if merge_cves(&mut f.cves, o.cves) {
            f.dirty = true;
        }
        let behind = Some(o.observation_id);
        if f.status == Status::Open && (later || changed) && f.last_observation_id != behind {
            f.last_observation_id = behind;
            f.dirty = true;
        }
    }
    if o.observed_at > f.last_seen {
        f.last_seen = o.observed_at;
        f.dirty = true;
    }
}

/// What observation `o` does to the status and state of finding `cur`.
fn transition(out: &mut Folded, cur: usize, i: usize, o: &Seen<'_>, key: SortKey) {
    let f = &mut out.findings[cur];
    match (f.status, o.state) {
        (Status::Open, ObservationState::NotVulnerable) => {
            let from = f.state;
            resolve(f, o.observed_at);
            f.state = o.state;
            let event = seen_event(
                cur,
                o,
                EventKind::Resolved,
                "observed not vulnerable".to_owned(),
                from,
            );
            out.events.push(event);
        }
        (Status::Open, ObservationState::Unknown) => {}
        (Status::Open, new) => {
            if new != f.state {
                let from = f.state;
                let escalation = new == ObservationState::Compromised;
                f.state = new;
                f.worst_state = f.worst_state.max(new);
                f.dirty = true;
                let (kind, reason) = if escalation {
                    f.escalated_at.get_or_insert(o.observed_at);
                    (
                        EventKind::Escalated,
                        "signs of compromise observed".to_owned(),
                    )
                } else {
                    (
                        EventKind::Changed,
                        format!("state changed from {from} to {new}"),
                    )
                };
                let event = seen_event(cur, o, kind, reason, from);
                out.events.push(event);
            }
        }
        (Status::Resolved, ObservationState::NotVulnerable) => {}
        (Status::Resolved, new) => {
            let relevant =
                new >= ObservationState::Vulnerable || f.worst_state == ObservationState::Unknown;
            if !relevant {
                return;
            }
            let resolved_at = f.resolved_at.unwrap_or(f.last_seen);
            let since = o.observed_at - resolved_at;
            if since <= Duration::days(REOPEN_WINDOW_DAYS) {
                let from = f.state;
                f.status = Status::Open;
                f.state = new;
                f.resolved_at = None;
                if new == ObservationState::Compromised {
                    f.escalated_at = Some(o.observed_at);
                }
                f.worst_state = f.worst_state.max(new);
                f.dirty = true;
                let reason = format!(
                    "seen {new} again {} day(s) after it was resolved",
                    since.num_days()
                );
                let event = seen_event(cur, o, EventKind::Reopened, reason, from);
                out.events.push(event);
            } else {
                f.current = false;
                f.dirty = true;
                let days = since.num_days();
                out.findings.push(open_finding(o, key));
                let new_index = out.findings.len() - 1;
                out.input_finding[i] = Some(new_index);
                out.events.push(Event {
                    finding: new_index,
                    at: o.observed_at,
                    kind: EventKind::Opened,
                    reason: format!(
                        "seen {new} {days} days after the previous finding was resolved \
                         (more than {REOPEN_WINDOW_DAYS}); a new finding starts"
                    ),
                    observation_id: Some(o.observation_id),
                    scan_run_id: o.scan_run_id,
                    from_state: None,
                    to_state: Some(new),
                });
            }
        }
    }
}

fn resolve(f: &mut FindingState, at: DateTime<Utc>) {
    f.status = Status::Resolved;
    f.resolved_at = Some(at);
    f.escalated_at = None;
    f.missed_at = None;
    f.dirty = true;
}

fn absent(out: &mut Folded, cur: usize, scan_run_id: i64, at: DateTime<Utc>) {
    let f = &mut out.findings[cur];
    if f.status != Status::Open {
        return;
    }
    let compromised = f.compromised();
    let kind = if compromised {
        f.missed_at = Some(f.missed_at.map_or(at, |m| m.max(at)));
        f.dirty = true;
        EventKind::Missed
    } else {
        resolve(f, at);
        EventKind::Resolved
    };
    let reason = absence_reason(scan_run_id, compromised);
    let state = f.state;
    out.events.push(Event {
        finding: cur,
        at,
        kind,
        reason,
        observation_id: None,
        scan_run_id: Some(scan_run_id),
        from_state: Some(state),
        to_state: None,
    });
}

/// Why a scan run's absence resolved a finding, or (`compromised`) did not.
pub fn absence_reason(scan_run_id: i64, compromised: bool) -> String {
    if compromised {
        format!(
            "not seen by scan run {scan_run_id}, whose scope covered it; signs of compromise \
             were seen, so it stays open until an observation shows them gone or an analyst \
             closes it"
        )
    } else {
        format!("not seen by scan run {scan_run_id}, whose scope covered it")
    }
}

fn close(out: &mut Folded, cur: usize, by: &str, note: &str, at: DateTime<Utc>) {
    let f = &mut out.findings[cur];
    if f.status != Status::Open {
        return;
    }
    let state = f.state;
    resolve(f, at);
    out.events.push(Event {
        finding: cur,
        at,
        kind: EventKind::Closed,
        reason: format!("closed by {by}: {note}"),
        observation_id: None,
        scan_run_id: None,
        from_state: Some(state),
        to_state: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ObservationState::*;

    fn t(day: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_614_902_400 + day * 86_400, 0).unwrap()
    }

    fn seen(id: i64, day: i64, state: ObservationState) -> Input<'static> {
        Input::Observation(Seen {
            observation_id: id,
            scan_run_id: None,
            observed_at: t(day),
            state,
            severity: None,
            cves: &[],
            owner: Owner::default(),
        })
    }

    fn absence(run: i64, day: i64) -> Input<'static> {
        Input::Absence {
            scan_run_id: run,
            at: t(day),
        }
    }

    fn kinds(f: &Folded) -> Vec<EventKind> {
        f.events.iter().map(|e| e.kind).collect()
    }

    fn stored(f: &Folded) -> FindingState {
        let mut s = f.findings.last().unwrap().clone();
        s.dirty = false;
        s
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
        assert_eq!(r.input_finding, [Some(0), Some(0), Some(0)]);
    }

    #[test]
    fn not_vulnerable_alone_opens_nothing() {
        let r = fold(None, &[seen(1, 0, NotVulnerable)]);
        assert!(r.findings.is_empty());
        assert_eq!(r.input_finding, [None]);
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
        assert_eq!(r.input_finding, [Some(0), Some(0), Some(1)]);
    }

    #[test]
    fn order_of_arrival_does_not_matter() {
        let inputs = [
            seen(1, 5, Vulnerable),
            seen(2, 6, NotVulnerable),
            seen(3, 2, Vulnerable),
        ];
        let whole = fold(None, &inputs);
        let reversed: Vec<Input<'_>> = inputs.iter().rev().cloned().collect();
        assert_eq!(fold(None, &reversed).findings, whole.findings);
        assert_eq!(whole.findings[0].first_seen, t(2));
        assert_eq!(whole.findings[0].status, Status::Resolved);
    }

    #[test]
    fn a_late_observation_older_than_a_resolution_does_not_reopen() {
        let first = fold(None, &[seen(1, 5, Vulnerable), seen(2, 6, NotVulnerable)]);
        // A vulnerable observation from before the fix arrives late: it
        // changes the past (first seen), so the key is replayed.
        assert!(fold_more(stored(&first), &[seen(3, 2, Vulnerable)]).is_none());
        let replayed = fold(
            None,
            &[
                seen(1, 5, Vulnerable),
                seen(2, 6, NotVulnerable),
                seen(3, 2, Vulnerable),
            ],
        );
        assert_eq!(replayed.findings[0].status, Status::Resolved);
        assert_eq!(replayed.findings[0].first_seen, t(2));
        assert_eq!(kinds(&replayed), [EventKind::Opened, EventKind::Resolved]);
        // One after the fix, before what came last, changes nothing at all.
        let first = fold(
            None,
            &[
                seen(1, 5, Vulnerable),
                seen(2, 6, NotVulnerable),
                seen(3, 8, NotVulnerable),
            ],
        );
        let more = fold_more(stored(&first), &[seen(4, 7, NotVulnerable)]).unwrap();
        assert!(more.events.is_empty());
        assert_eq!(more.findings[0].status, Status::Resolved);
        assert_eq!(more.findings[0].last_seen, t(8));
    }

    #[test]
    fn a_late_not_vulnerable_is_replayed_not_ignored() {
        let open = fold(None, &[seen(1, 5, Vulnerable)]);
        // Earlier than the sighting: the fold cannot tell alone.
        assert!(fold_more(stored(&open), &[seen(2, 1, NotVulnerable)]).is_none());
        let whole = fold(None, &[seen(1, 5, Vulnerable), seen(2, 1, NotVulnerable)]);
        assert_eq!(whole.findings[0].status, Status::Open);
        let between = fold(
            None,
            &[
                seen(1, 5, Vulnerable),
                seen(3, 9, Vulnerable),
                seen(2, 7, NotVulnerable),
            ],
        );
        assert_eq!(
            kinds(&between),
            [EventKind::Opened, EventKind::Resolved, EventKind::Reopened]
        );
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
    fn absence_resolves_a_vulnerability_but_never_a_compromise() {
        let r = fold(None, &[seen(1, 0, Vulnerable), absence(7, 1)]);
        assert_eq!(kinds(&r), [EventKind::Opened, EventKind::Resolved]);
        assert_eq!(r.findings[0].resolved_at, Some(t(1)));
        assert_eq!(r.findings[0].events_scan_run(&r), Some(7));

        // Compromised once since it opened: stays open, not seen since.
        let r = fold(
            None,
            &[
                seen(1, 0, Compromised),
                seen(2, 1, Vulnerable),
                absence(7, 2),
                absence(8, 3),
            ],
        );
        let f = &r.findings[0];
        assert_eq!(f.status, Status::Open);
        assert_eq!(f.not_seen_since(), Some(t(1)));
        assert_eq!(f.missed_at, Some(t(3)));
        assert_eq!(
            kinds(&r),
            [
                EventKind::Opened,
                EventKind::Changed,
                EventKind::Missed,
                EventKind::Missed
            ]
        );
        // Seen again: no longer "not seen".
        let again = fold_more(stored(&r), &[seen(3, 4, Compromised)]).unwrap();
        assert_eq!(again.findings[0].not_seen_since(), None);
        // An observation showing the compromise gone resolves it, and a
        // later absence has nothing to do.
        let gone = fold(
            None,
            &[
                seen(1, 0, Compromised),
                seen(2, 5, NotVulnerable),
                absence(9, 6),
            ],
        );
        assert_eq!(gone.findings[0].status, Status::Resolved);
        assert_eq!(gone.findings[0].escalated_at, None);
    }

    #[test]
    fn an_analyst_closes_a_compromise_with_a_note() {
        let r = fold(
            None,
            &[
                seen(1, 0, Compromised),
                absence(7, 1),
                Input::Closure {
                    closure_id: 1,
                    at: t(2),
                    by: "ana@ncsc.example",
                    note: "rebuilt from scratch",
                },
            ],
        );
        assert_eq!(r.findings[0].status, Status::Resolved);
        assert_eq!(r.events[2].kind, EventKind::Closed);
        assert_eq!(
            r.events[2].reason,
            "closed by ana@ncsc.example: rebuilt from scratch"
        );
        // Seen compromised again within 90 days: reopened.
        let again = fold_more(stored(&r), &[seen(2, 3, Compromised)]).unwrap();
        assert_eq!(again.findings[0].status, Status::Open);
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
        let mut existing = stored(&first);
        existing.id = Some(10);
        let again = fold_more(existing, &[seen(2, 0, Vulnerable)]).unwrap();
        assert!(again.events.is_empty());
        assert!(!again.findings[0].dirty);
    }

    #[test]
    fn at_one_instant_the_worst_state_wins() {
        let r = fold(None, &[seen(1, 0, Compromised), seen(2, 0, NotVulnerable)]);
        assert_eq!(r.findings[0].status, Status::Open);
        assert_eq!(r.findings[0].state, Compromised);
    }

    impl FindingState {
        fn events_scan_run(&self, f: &Folded) -> Option<i64> {
            f.events.last().and_then(|e| e.scan_run_id)
        }
    }
}

/// A finding is a function of the set of its inputs: whatever order and
/// chunks they arrive in, folding chunk after chunk the way ingest does
/// (fold more when that is exact, else replay the key's whole set) ends
/// where folding the whole set at once does.
#[cfg(test)]
mod property {
    use proptest::prelude::*;

    use super::*;

    /// An input as generated, before arrival gives observations their ids.
    #[derive(Debug, Clone)]
    enum Gen {
        Observation {
            hour: i64,
            state: ObservationState,
            severity: Option<Severity>,
            cve: Option<usize>,
        },
        Absence {
            run: i64,
            hour: i64,
        },
        Closure {
            id: i64,
            hour: i64,
        },
    }

    const CVES: [&str; 3] = ["CVE-2021-26855", "CVE-2021-26857", "CVE-2021-27065"];

    fn at(hour: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_614_902_400 + hour * 3_600, 0).unwrap()
    }

    fn state() -> impl Strategy<Value = ObservationState> {
        prop_oneof![
            Just(ObservationState::NotVulnerable),
            Just(ObservationState::Unknown),
            Just(ObservationState::Vulnerable),
            Just(ObservationState::Compromised),
        ]
    }

    fn severity() -> impl Strategy<Value = Option<Severity>> {
        prop_oneof![
            Just(None),
            Just(Some(Severity::High)),
            Just(Some(Severity::Critical))
        ]
    }

    /// Hours from a small range (so that many inputs share an instant) or
    /// months apart (so that findings are resolved for more than 90 days).
    fn hour() -> impl Strategy<Value = i64> {
        prop_oneof![0..12_i64, (0..4_i64).prop_map(|m| m * 24 * 100)]
    }

    fn any_input() -> impl Strategy<Value = Gen> {
        prop_oneof![
            8 => (hour(), state(), severity(), proptest::option::of(0..CVES.len()))
                .prop_map(|(hour, state, severity, cve)| Gen::Observation { hour, state, severity, cve }),
            2 => (1..4_i64, hour()).prop_map(|(run, hour)| Gen::Absence { run, hour }),
            1 => (1..3_i64, hour()).prop_map(|(id, hour)| Gen::Closure { id, hour }),
        ]
    }

    /// The inputs in arrival order, observation ids given in that order as
    /// the database gives them.
    fn arrive(gens: &[Gen], order: &[usize]) -> Vec<Input<'static>> {
        let mut next_id = 0;
        order
            .iter()
            .map(|&i| match &gens[i] {
                Gen::Observation {
                    hour,
                    state,
                    severity,
                    cve,
                } => {
                    next_id += 1;
                    let cves: &'static [String] = match cve {
                        Some(c) => Box::leak(Box::new([CVES[*c].to_owned()])),
                        None => &[],
                    };
                    Input::Observation(Seen {
                        observation_id: next_id,
                        scan_run_id: None,
                        observed_at: at(*hour),
                        state: *state,
                        severity: *severity,
                        cves,
                        owner: Owner::default(),
                    })
                }
                Gen::Absence { run, hour } => Input::Absence {
                    scan_run_id: *run,
                    at: at(*hour),
                },
                Gen::Closure { id, hour } => Input::Closure {
                    closure_id: *id,
                    at: at(*hour),
                    by: "analyst",
                    note: "checked",
                },
            })
            .collect()
    }

    /// What the store keeps of a key: every input, its findings, their
    /// history.
    #[derive(Default)]
    struct Key {
        inputs: Vec<Input<'static>>,
        findings: Vec<FindingState>,
        events: Vec<Event>,
    }

    impl Key {
        fn take(&mut self, chunk: &[Input<'static>]) {
            let current = self.findings.last().cloned();
            let hidden = self.inputs.iter().map(Input::key).max();
            let first_new = chunk.iter().map(Input::key).min();
            let more = match current {
                Some(f) => fold_more(FindingState { dirty: false, ..f }, chunk),
                // Without a finding, what is stored (not_vulnerable
                // observations, absences) matters only if it sorts after
                // what arrives.
                None if hidden <= first_new => Some(fold(None, chunk)),
                None => None,
            };
            self.inputs.extend_from_slice(chunk);
            match more {
                Some(folded) => {
                    let offset = self.findings.len().saturating_sub(1);
                    let offset = if self.findings.is_empty() { 0 } else { offset };
                    self.findings.truncate(offset);
                    self.findings.extend(folded.findings);
                    self.events.extend(folded.events.into_iter().map(|mut e| {
                        e.finding += offset;
                        e
                    }));
                }
                None => {
                    let whole = fold(None, &self.inputs);
                    self.findings = whole.findings;
                    self.events = whole.events;
                }
            }
        }
    }

    fn comparable(findings: &[FindingState], events: &[Event]) -> (Vec<FindingState>, Vec<Event>) {
        // Which of several positive observations at the last instant is
        // the one whose evidence a finding shows may depend on arrival;
        // nothing else may.
        let findings = findings
            .iter()
            .map(|f| FindingState {
                dirty: false,
                last_observation_id: None,
                ..f.clone()
            })
            .collect();
        // Observations get their ids as they arrive: events are compared
        // by what they say, not by which observation id they name.
        let mut events: Vec<Event> = events
            .iter()
            .map(|e| Event {
                observation_id: None,
                ..e.clone()
            })
            .collect();
        events.sort_by_key(|e| {
            (
                e.finding,
                e.at,
                e.kind.as_str(),
                e.scan_run_id,
                e.reason.clone(),
            )
        });
        (findings, events)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn any_order_and_chunking_gives_the_same_findings(
            gens in proptest::collection::vec(any_input(), 1..14),
            shuffle in any::<u64>(),
            cuts in proptest::collection::vec(any::<bool>(), 14),
        ) {
            // A permutation from the seed (Fisher-Yates with an LCG).
            let mut order: Vec<usize> = (0..gens.len()).collect();
            let mut seed = shuffle;
            for i in (1..order.len()).rev() {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                order.swap(i, (seed >> 33) as usize % (i + 1));
            }
            let inputs = arrive(&gens, &order);
            let mut key = Key::default();
            let mut start = 0;
            for end in 1..=inputs.len() {
                if end == inputs.len() || cuts[end] {
                    key.take(&inputs[start..end]);
                    start = end;
                }
            }
            // The whole set folded at once, arrived in another order.
            let in_order: Vec<usize> = (0..gens.len()).collect();
            let whole = fold(None, &arrive(&gens, &in_order));
            prop_assert_eq!(
                comparable(&key.findings, &key.events),
                comparable(&whole.findings, &whole.events)
            );
        }
    }
}
