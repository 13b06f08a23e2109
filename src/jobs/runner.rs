//! The workers of a serving instance: a few tasks that claim and run due
//! jobs, woken by `NOTIFY varsel_jobs` (and a slow poll, for retries and
//! scheduled jobs coming due), a scheduler for periodic jobs, and the
//! refresh of the in-memory attribution table when another instance
//! changes the registry. All of it stops on cancellation: no new job is
//! claimed, a running one finishes.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::queue;
use crate::app::AppState;

/// How long to wait before listening again after losing the connection.
const RECONNECT: Duration = Duration::from_secs(5);

/// Starts `workers` job workers (none: this instance runs no jobs) and the
/// instance's listeners; the returned set ends once `cancel` is cancelled
/// and running jobs have finished.
pub fn spawn(state: AppState, workers: usize, cancel: CancellationToken) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(until_cancelled(
        cancel.clone(),
        listen_for_registry_changes(state.clone()),
    ));
    if workers == 0 {
        return tasks;
    }
    let wake = Arc::new(Notify::new());
    tasks.spawn(until_cancelled(
        cancel.clone(),
        listen_for_jobs(state.clone(), wake.clone()),
    ));
    tasks.spawn(until_cancelled(cancel.clone(), schedule(state.clone())));
    for _ in 0..workers {
        tasks.spawn(work(state.clone(), wake.clone(), cancel.clone()));
    }
    tasks
}

async fn until_cancelled(cancel: CancellationToken, task: impl Future<Output = ()>) {
    tokio::select! {
        () = cancel.cancelled() => {}
        () = task => {}
    }
}

/// Claims and runs one due job; `false` when none was due.
pub async fn run_one(state: &AppState) -> anyhow::Result<bool> {
    let Some(claimed) = queue::claim(&state.pool, state.clock.now()).await? else {
        return Ok(false);
    };
    let outcome = match &claimed.job {
        Ok(job) => {
            let kind = job.kind();
            let span = tracing::info_span!("job", id = claimed.id, kind);
            let run = job.clone().run(state);
            match AssertUnwindSafe(tracing::Instrument::instrument(run, span))
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("{e:#}")),
                Err(_) => Err("the job panicked".to_owned()),
            }
        }
        Err(unknown) => Err(unknown.clone()),
    };
    let now = state.clock.now();
    match outcome {
        Ok(()) => {
            queue::complete(&state.pool, &claimed, now).await?;
            if claimed.job.as_ref().is_ok_and(super::Job::is_periodic) {
                // Its next run.
                super::schedule_periodic(state).await?;
            }
        }
        Err(error) => {
            tracing::warn!(job = claimed.id, attempt = claimed.attempts, %error, "job failed");
            queue::fail(&state.pool, &claimed, now, &error).await?;
        }
    }
    Ok(true)
}

async fn work(state: AppState, wake: Arc<Notify>, cancel: CancellationToken) {
    let poll = Duration::from_secs(state.settings.job_poll_seconds);
    while !cancel.is_cancelled() {
        // Registered before looking, so a notification that arrives while
        // this worker finds nothing to do still wakes it.
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match run_one(&state).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot claim or finish a job"),
        }
        tokio::select! {
            () = cancel.cancelled() => {}
            () = woken => {}
            () = tokio::time::sleep(poll) => {}
        }
    }
}

async fn listen_for_jobs(state: AppState, wake: Arc<Notify>) {
    loop {
        match PgListener::connect_with(&state.pool).await {
            Ok(mut listener) => match listener.listen("varsel_jobs").await {
                Ok(()) => {
                    while listener.recv().await.is_ok() {
                        wake.notify_waiters();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "LISTEN varsel_jobs failed"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for jobs"),
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

async fn schedule(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Err(e) = super::schedule_periodic(&state).await {
            tracing::warn!(error = %e, "cannot schedule periodic jobs");
        }
    }
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
        tokio::time::sleep(RECONNECT).await;
    }
}
