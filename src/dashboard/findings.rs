//! `/findings`: findings filtered, in detail, flagged, exported; the triage queue.

use axum::Router;

use crate::app::AppState;

pub fn pages() -> Router<AppState> {
    Router::new()
}
