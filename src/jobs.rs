//! Background work of a running instance: refreshing the attribution table
//! as soon as another instance changes the registry (LISTEN/NOTIFY),
//! dropping expired observation partitions, and forgetting old idempotency
//! keys. Every job is safe to run on any number of instances at once.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

use crate::app::AppState;

/// Idempotency keys are honoured for this long.
pub const IDEMPOTENCY_KEY_TTL_HOURS: i64 = 24;

/// Starts the jobs; abort the handle to stop them.
pub fn spawn(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(
            listen_for_registry_changes(state.clone()),
            housekeeping(state)
        );
    })
}

async fn listen_for_registry_changes(state: AppState) {
    loop {
        match PgListener::connect_with(&state.pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen("varsel_registry").await {
                    tracing::warn!(error = %e, "LISTEN failed");
                } else {
                    // Catch up on anything missed while not listening.
                    let _ = state.attributor.current(&state.pool).await;
                    while listener.recv().await.is_ok() {
                        if let Err(e) = state.attributor.current(&state.pool).await {
                            tracing::warn!(error = %e, "refreshing the attribution table failed");
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for registry changes"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn housekeeping(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if let Err(e) = forget_idempotency_keys(&state).await {
            tracing::warn!(error = %e, "cleaning idempotency keys failed");
        }
        if state.settings.retention_days > 0 {
            match crate::ingest::store::drop_expired_partitions(
                &state.pool,
                state.settings.retention_days,
            )
            .await
            {
                Ok(dropped) if !dropped.is_empty() => {
                    tracing::info!(?dropped, "dropped expired observation partitions");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention failed"),
            }
        }
    }
}

async fn forget_idempotency_keys(state: &AppState) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
    )
    .bind(IDEMPOTENCY_KEY_TTL_HOURS as i32)
    .execute(&state.pool)
    .await?;
    Ok(())
}
