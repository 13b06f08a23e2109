//! `/campaigns`: advisories written, previewed, approved, updated, followed, closed.

use axum::Router;

use crate::app::AppState;

pub fn pages() -> Router<AppState> {
    Router::new()
}
