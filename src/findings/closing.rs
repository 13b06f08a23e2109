//! An analyst closing a finding with a note: the one way, besides an
//! observation showing it gone, that a compromise is closed (a scan run's
//! absence never closes one). The closure is an input of the finding's
//! fold like an observation (`fold::Input::Closure`), kept in its own
//! table, so a late observation replayed later still sees it; the history
//! says who closed it and why, and the audit log records it, in the same
//! transaction.

use chrono::{DateTime, Utc};
use sqlx::{Acquire, PgConnection};

use super::coverage::Coverage;
use super::fold::Input;
use super::store::{self, Key, lock_writers};
use super::writer::{self, Group};
use crate::domain::{Actor, DomainError, DomainResult, required_text};

/// Longest note, in characters.
pub const MAX_NOTE: usize = 2000;

/// Closes open finding `id` at `now` with `note`. A finding that is not
/// open, or no longer the current one of its key, is a conflict.
pub async fn close(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    note: &str,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let note = required_text("note", note, MAX_NOTE)?;
    let mut tx = conn.begin().await?;
    lock_writers(&mut tx).await?;
    let row: Option<(std::net::IpAddr, i32, String, String, bool, String)> = sqlx::query_as(
        "SELECT ip, port, protocol, check_id, current, status FROM findings WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((ip, port, protocol, check, current, status)) = row else {
        return Err(DomainError::not_found(format!("finding {id}")));
    };
    if !current || status != "open" {
        return Err(DomainError::conflict(format!(
            "finding {id} is not open: only an open finding can be closed"
        )));
    }
    let key = Key {
        ip,
        port: u16::try_from(port)
            .map_err(|_| DomainError::conflict(format!("finding {id} has no valid port")))?,
        protocol,
        check,
    };
    let by = actor.display_name();
    let closure_id: i64 = sqlx::query_scalar(
        "INSERT INTO finding_closures (finding_id, at, actor, note) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(id)
    .bind(now)
    .bind(&by)
    .bind(&note)
    .fetch_one(&mut *tx)
    .await?;
    let current = store::read_current(&mut tx, &[&key]).await?;
    let coverage = Coverage::load(&mut tx).await?;
    let groups = [Group {
        key: &key,
        inputs: vec![Input::Closure {
            closure_id,
            at: now,
            by: &by,
            note: &note,
        }],
    }];
    let Some(written) = writer::write(&mut tx, &groups, current, &coverage).await? else {
        // Nothing else writes findings while this holds the writer lock.
        return Err(DomainError::conflict(format!(
            "finding {id} changed meanwhile; try again"
        )));
    };
    if !written.resolved.is_empty() {
        crate::notifications::drafting::enqueue_if_active(&mut tx, now).await?;
    }
    crate::audit::commit(
        tx,
        actor,
        "finding.close",
        &format!("finding:{id}"),
        serde_json::json!({ "note": note }),
    )
    .await?;
    Ok(())
}
