//! The periodic housekeeping job: forgetting idempotency keys once they
//! expire, and dropping observation partitions past the retention period.

use crate::app::AppState;

/// Idempotency keys are honoured for this long.
pub const IDEMPOTENCY_KEY_TTL_HOURS: i64 = 24;

pub async fn run(state: &AppState) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(state.clock.now() - chrono::Duration::hours(IDEMPOTENCY_KEY_TTL_HOURS))
        .execute(&state.pool)
        .await?;
    if state.settings.retention_days > 0 {
        let dropped = crate::ingest::store::drop_expired_partitions(
            &state.pool,
            state.settings.retention_days,
        )
        .await?;
        if !dropped.is_empty() {
            tracing::info!(?dropped, "dropped expired observation partitions");
        }
    }
    Ok(())
}
