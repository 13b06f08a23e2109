//! The audit log: who changed what, when. Written in the same transaction as
//! the change it records.

use sqlx::PgConnection;

use crate::domain::Actor;

pub async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (actor, action, subject, detail) VALUES ($1, $2, $3, $4)",
    )
    .bind(actor.to_string())
    .bind(action)
    .bind(subject)
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the event in `tx` and commits: the change and its audit record
/// land together or not at all.
pub async fn commit(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    record(&mut tx, actor, action, subject, detail).await?;
    tx.commit().await
}
