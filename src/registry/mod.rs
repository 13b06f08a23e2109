//! The registry of who owns which addresses: organisations with their
//! contacts, networks (with validity history), ASNs and domains. Owns the
//! CRUD API ([`organisations`], [`contacts`], [`networks`], [`domains`]) and
//! the importers ([`import`]).

pub mod contacts;
pub mod domains;
pub mod import;
pub mod model;
pub mod networks;
pub mod organisations;

use axum::Router;

use crate::app::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(organisations::routes())
        .merge(contacts::routes())
        .merge(networks::routes())
        .merge(domains::routes())
}

/// 404 unless the organisation exists.
pub(crate) async fn organisation_exists(
    conn: &mut sqlx::PgConnection,
    id: i64,
) -> Result<(), crate::error::ApiError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT id FROM organisations WHERE id = $1 FOR KEY SHARE")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    found
        .map(|_| ())
        .ok_or_else(|| crate::error::ApiError::not_found(format!("organisation {id}")))
}
