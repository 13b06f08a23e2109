//! What an organisation answers on its page, and what each answer changes:
//! read from the form field by field (errors name the field, in the page's
//! language), then recorded in one transaction with the time, the
//! notification, the finding where it applies and the client address —
//! once per form sent, however often it is sent (the form's nonce).
//!
//! - acknowledged: the notification is acknowledged, so reminders stop;
//! - fixed: a re-check is requested (scanners list it, `/api/v1/rechecks`);
//! - false positive (with a reason): a flag with an expiry that keeps the
//!   finding out of reminders and counts;
//! - not ours: the finding goes back to the triage queue, and late
//!   attribution never hands it to this organisation again;
//! - compromise found: an escalation for analysts to take;
//! - a comment; a proposed contact address (analysts confirm it).

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use sqlx::{Acquire, PgConnection};

use super::access::Link;
use super::texts::PageWords;
use crate::app::AppState;
use crate::domain::Actor;
use crate::jobs::{self, Job};
use crate::notifications::store;
use crate::registry::model::{EmailAddress, Language};
use crate::web::form::{FieldErrors, FormFields};

/// What a finding answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingAnswer {
    Fixed,
    FalsePositive,
    NotOurs,
}

impl FindingAnswer {
    pub fn kind(self) -> &'static str {
        match self {
            FindingAnswer::Fixed => "fixed",
            FindingAnswer::FalsePositive => "false_positive",
            FindingAnswer::NotOurs => "not_ours",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Answer {
    Acknowledge,
    Findings {
        answer: FindingAnswer,
        ids: Vec<i64>,
        reason: Option<String>,
    },
    Compromise {
        contact_name: String,
        phone: String,
        observed: String,
        finding_id: Option<i64>,
    },
    Comment {
        text: String,
    },
    ContactChange {
        email: EmailAddress,
        name: Option<String>,
        language: Language,
    },
}

impl Answer {
    /// The response's kind, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            Answer::Acknowledge => "acknowledged",
            Answer::Findings { answer, .. } => answer.kind(),
            Answer::Compromise { .. } => "compromise",
            Answer::Comment { .. } => "comment",
            Answer::ContactChange { .. } => "contact_change",
        }
    }
}

/// The longest free text a form takes.
const MAX_TEXT: usize = 5000;

/// Reads the answer a form sends. `answerable` are the findings the
/// organisation may answer about (its open ones on this notification).
pub fn read(fields: &FormFields, w: &PageWords, answerable: &[i64]) -> Result<Answer, FieldErrors> {
    let mut errors = FieldErrors::default();
    let text = |errors: &mut FieldErrors, field: &'static str, max: usize, required: bool| {
        text_field(fields, w, errors, field, max, required)
    };
    let answer = match fields.get("form").unwrap_or("") {
        "acknowledge" => Some(Answer::Acknowledge),
        "findings" => {
            let answer = match fields.get("answer").unwrap_or("") {
                "fixed" => FindingAnswer::Fixed,
                "false_positive" => FindingAnswer::FalsePositive,
                "not_ours" => FindingAnswer::NotOurs,
                _ => {
                    errors.add("answer", w.err_required);
                    FindingAnswer::Fixed
                }
            };
            let reason = text(
                &mut errors,
                "reason",
                MAX_TEXT,
                answer == FindingAnswer::FalsePositive,
            );
            let mut ids = Vec::new();
            for value in fields.all("finding") {
                match value.parse::<i64>() {
                    Ok(id) if answerable.contains(&id) => ids.push(id),
                    _ => {
                        errors.add("finding", w.err_unknown_finding);
                        break;
                    }
                }
            }
            if ids.is_empty() && errors.get("finding").is_none() {
                errors.add("finding", w.err_no_finding);
            }
            ids.sort_unstable();
            ids.dedup();
            Some(Answer::Findings {
                answer,
                ids,
                reason,
            })
        }
        "compromise" => {
            let contact_name = text(&mut errors, "contact_name", 200, true);
            let phone = text(&mut errors, "phone", 40, true);
            if let Some(p) = &phone {
                let digits = p.chars().filter(char::is_ascii_digit).count();
                let allowed = p
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c));
                if digits < 5 || !allowed {
                    errors.add("phone", w.err_phone);
                }
            }
            let observed = text(&mut errors, "observed", MAX_TEXT, true);
            let finding_id = match fields.get("finding").unwrap_or("") {
                "" => None,
                v => match v.parse::<i64>() {
                    Ok(id) if answerable.contains(&id) => Some(id),
                    _ => {
                        errors.add("finding", w.err_unknown_finding);
                        None
                    }
                },
            };
            match (contact_name, phone, observed) {
                (Some(contact_name), Some(phone), Some(observed)) => Some(Answer::Compromise {
                    contact_name,
                    phone,
                    observed,
                    finding_id,
                }),
                _ => None,
            }
        }
        "comment" => {
            text(&mut errors, "comment", MAX_TEXT, true).map(|text| Answer::Comment { text })
        }
        "contact" => {
            let email =
                text(&mut errors, "email", 254, true).and_then(|e| match EmailAddress::parse(&e) {
                    Ok(email) => Some(email),
                    Err(_) => {
                        errors.add("email", w.err_email);
                        None
                    }
                });
            let name = text(&mut errors, "name", 200, false);
            let language = match fields.get("language").and_then(|l| Language::parse(l).ok()) {
                Some(l) => Some(l),
                None => {
                    errors.add("language", w.err_language);
                    None
                }
            };
            match (email, language) {
                (Some(email), Some(language)) => Some(Answer::ContactChange {
                    email,
                    name,
                    language,
                }),
                _ => None,
            }
        }
        _ => {
            errors.add("form", w.err_required);
            None
        }
    };
    match answer {
        Some(answer) if errors.is_empty() => Ok(answer),
        _ => Err(errors),
    }
}

/// A trimmed text field: `None` when empty (an error if `required`) or
/// invalid (an error).
fn text_field(
    fields: &FormFields,
    w: &PageWords,
    errors: &mut FieldErrors,
    field: &'static str,
    max: usize,
    required: bool,
) -> Option<String> {
    let value = fields.get(field).map(str::trim).unwrap_or("");
    if value.is_empty() {
        if required {
            errors.add(field, w.err_required);
        }
        return None;
    }
    if value.chars().count() > max || value.contains('\0') {
        errors.add(field, w.err_too_long);
        return None;
    }
    Some(value.to_owned())
}

/// Whether the answer was recorded now or had been already (a form sent
/// twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Again,
}

/// Records `answer`, sent in the form whose key is `key`, and does what it
/// changes, in one transaction.
pub async fn record(
    state: &AppState,
    link: &Link,
    answer: &Answer,
    key: &str,
    client: Option<IpAddr>,
    now: DateTime<Utc>,
) -> anyhow::Result<Recorded> {
    let mut conn = state.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let first: Option<i32> = sqlx::query_scalar(
        "INSERT INTO response_submissions (notification_id, key, at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING RETURNING 1",
    )
    .bind(link.notification_id)
    .bind(key)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    if first.is_none() {
        return Ok(Recorded::Again);
    }
    // Answers to one notification are decided one at a time.
    sqlx::query("SELECT 1 FROM notifications WHERE id = $1 FOR UPDATE")
        .bind(link.notification_id)
        .execute(&mut *tx)
        .await?;
    let actor = Actor::Organisation {
        id: link.organisation_id,
    };
    let respond = Responder {
        link,
        key,
        client,
        now,
    };
    let timeline = match answer {
        Answer::Acknowledge => {
            respond
                .insert(&mut tx, "acknowledged", None, serde_json::json!({}))
                .await?;
            let first: Option<i64> = sqlx::query_scalar(
                "UPDATE notifications SET acknowledged_at = $2,
                        status = CASE WHEN status IN ('approved', 'sent') THEN 'acknowledged' ELSE status END
                  WHERE id = $1 AND acknowledged_at IS NULL RETURNING id",
            )
            .bind(link.notification_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            first.map(|_| {
                (
                    "acknowledged",
                    serde_json::json!({ "link_id": link.link_id }),
                )
            })
        }
        Answer::Findings {
            answer,
            ids,
            reason,
        } => {
            let changed =
                answer_findings(&mut tx, state, link, *answer, ids, reason.as_deref(), now).await?;
            respond
                .insert_for_findings(
                    &mut tx,
                    answer.kind(),
                    &changed,
                    serde_json::json!({ "reason": reason }),
                )
                .await?;
            if *answer != FindingAnswer::Fixed && !changed.is_empty() {
                // Counts and resolution follow.
                jobs::enqueue(&mut tx, &Job::MatchFindings, now).await?;
            }
            (!changed.is_empty()).then(|| {
                (
                    match answer {
                        FindingAnswer::Fixed => "reported_fixed",
                        FindingAnswer::FalsePositive => "reported_false_positive",
                        FindingAnswer::NotOurs => "reported_not_ours",
                    },
                    serde_json::json!({ "findings": changed }),
                )
            })
        }
        Answer::Compromise {
            contact_name,
            phone,
            observed,
            finding_id,
        } => {
            let response = respond
                .insert(
                    &mut tx,
                    "compromise",
                    *finding_id,
                    serde_json::json!({ "contact_name": contact_name, "phone": phone, "observed": observed }),
                )
                .await?;
            let escalation: i64 = sqlx::query_scalar(
                "INSERT INTO escalations (notification_id, response_id, opened_at, contact_name, phone, observed)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(link.notification_id)
            .bind(response)
            .bind(now)
            .bind(contact_name)
            .bind(phone)
            .bind(observed)
            .fetch_one(&mut *tx)
            .await?;
            tracing::warn!(
                escalation,
                notification = link.notification_id,
                "an organisation reported signs of compromise"
            );
            Some((
                "compromise_reported",
                serde_json::json!({ "escalation_id": escalation }),
            ))
        }
        Answer::Comment { text } => {
            respond
                .insert(
                    &mut tx,
                    "comment",
                    None,
                    serde_json::json!({ "text": text }),
                )
                .await?;
            Some(("comment", serde_json::json!({})))
        }
        Answer::ContactChange {
            email,
            name,
            language,
        } => {
            let response = respond
                .insert(
                    &mut tx,
                    "contact_change",
                    None,
                    serde_json::json!({ "email": email.as_str(), "name": name, "language": language.as_str() }),
                )
                .await?;
            let proposal: i64 = sqlx::query_scalar(
                "INSERT INTO contact_proposals (notification_id, organisation_id, response_id, email, name, language)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(link.notification_id)
            .bind(link.organisation_id)
            .bind(response)
            .bind(email.as_str())
            .bind(name)
            .bind(language.as_str())
            .fetch_one(&mut *tx)
            .await?;
            Some((
                "contact_proposed",
                serde_json::json!({ "proposal_id": proposal }),
            ))
        }
    };
    if let Some((kind, detail)) = timeline {
        store::record(&mut tx, &[link.notification_id], now, kind, &actor, detail).await?;
    }
    tx.commit().await?;
    Ok(Recorded::New)
}

/// Writes response rows of one form.
struct Responder<'a> {
    link: &'a Link,
    key: &'a str,
    client: Option<IpAddr>,
    now: DateTime<Utc>,
}

impl Responder<'_> {
    async fn insert(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        finding_id: Option<i64>,
        detail: serde_json::Value,
    ) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar(
            "INSERT INTO responses (notification_id, finding_id, kind, at, client_addr, detail, submission_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(self.link.notification_id)
        .bind(finding_id)
        .bind(kind)
        .bind(self.now)
        .bind(self.client.map(ipnet::IpNet::from))
        .bind(detail)
        .bind(self.key)
        .fetch_one(conn)
        .await
    }

    /// One response per finding, in one statement.
    async fn insert_for_findings(
        &self,
        conn: &mut PgConnection,
        kind: &str,
        finding_ids: &[i64],
        detail: serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO responses (notification_id, finding_id, kind, at, client_addr, detail, submission_key)
             SELECT $1, f, $3, $4, $5, $6, $7 FROM unnest($2::bigint[]) WITH ORDINALITY AS u(f, n)
              ORDER BY n",
        )
        .bind(self.link.notification_id)
        .bind(finding_ids)
        .bind(kind)
        .bind(self.now)
        .bind(self.client.map(ipnet::IpNet::from))
        .bind(detail)
        .bind(self.key)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Sets what a finding answer sets on the organisation's open findings of
/// the notification among `ids`, with an entry in each one's history;
/// returns those changed.
async fn answer_findings(
    tx: &mut PgConnection,
    state: &AppState,
    link: &Link,
    answer: FindingAnswer,
    ids: &[i64],
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, sqlx::Error> {
    let set = match answer {
        FindingAnswer::Fixed => "recheck_requested_at = $4",
        FindingAnswer::FalsePositive => "false_positive_until = $5, false_positive_reason = $6",
        FindingAnswer::NotOurs => {
            "disputed_by = organisation_id, organisation_id = NULL, network_id = NULL, attribution = 'disputed'"
        }
    };
    let until = now + Duration::days(i64::from(state.settings.false_positive_days));
    let changed: Vec<i64> = sqlx::query_scalar(&format!(
        "UPDATE findings f SET {set}, updated_at = now()
           FROM notification_findings nf
          WHERE nf.notification_id = $1 AND nf.finding_id = f.id AND f.id = ANY($2)
            AND f.organisation_id = $3 AND f.status = 'open'
         RETURNING f.id"
    ))
    .bind(link.notification_id)
    .bind(ids)
    .bind(link.organisation_id)
    .bind(now)
    .bind(until)
    .bind(reason)
    .fetch_all(&mut *tx)
    .await?;
    let (kind, why) = match answer {
        FindingAnswer::Fixed => (
            "recheck_requested",
            "the owner reported it fixed".to_owned(),
        ),
        FindingAnswer::FalsePositive => (
            "false_positive",
            format!(
                "the owner reported a false positive: {}",
                reason.unwrap_or_default()
            ),
        ),
        FindingAnswer::NotOurs => (
            "disputed",
            "the owner said the address is not theirs; back to triage".to_owned(),
        ),
    };
    sqlx::query(
        "INSERT INTO finding_events (finding_id, at, kind, reason)
         SELECT id, $2, $3, $4 FROM unnest($1::bigint[]) AS id",
    )
    .bind(&changed)
    .bind(now)
    .bind(kind)
    .bind(why)
    .execute(&mut *tx)
    .await?;
    Ok(changed)
}

/// Ends the false-positive flags whose time ran out (the periodic sweep,
/// before drafting): the findings count again, and say so in their
/// history.
pub async fn expire_false_positives(state: &AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let expired: Vec<i64> = sqlx::query_scalar(
        "UPDATE findings SET false_positive_until = NULL, updated_at = now()
          WHERE false_positive_until <= $1 RETURNING id",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO finding_events (finding_id, at, kind, reason)
         SELECT id, $2, 'false_positive', 'the false-positive flag expired' FROM unnest($1::bigint[]) AS id",
    )
    .bind(&expired)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
