//! Dense ids for rows written in bulk: a batch reserves a contiguous range
//! of exactly as many ids as it writes, inside its own transaction, so it
//! knows them before its COPY (the findings history points at observation
//! ids) and people reading ids in URLs and mails see small, dense numbers.

use sqlx::PgConnection;

/// A series of ids handed out in ranges (a row of `id_ranges`).
#[derive(Debug, Clone, Copy)]
pub enum IdSeries {
    Findings,
    Observations,
}

impl IdSeries {
    fn name(self) -> &'static str {
        match self {
            IdSeries::Findings => "findings",
            IdSeries::Observations => "observations",
        }
    }
}

/// Reserves `count` consecutive ids and returns the first. The counter row
/// stays locked until the caller's transaction ends; callers are writers of
/// findings, which take turns already (see `findings::store::lock_writers`,
/// always taken first, so this lock never orders differently).
pub async fn reserve(
    conn: &mut PgConnection,
    series: IdSeries,
    count: usize,
) -> Result<i64, sqlx::Error> {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    sqlx::query_scalar(
        "UPDATE id_ranges SET next_id = next_id + $2 WHERE series = $1 RETURNING next_id - $2",
    )
    .bind(series.name())
    .bind(count)
    .fetch_one(conn)
    .await
}
