//! `/organisations`: the registry of organisations, their networks and contacts.

use axum::Router;

use crate::app::AppState;

pub fn pages() -> Router<AppState> {
    Router::new()
}
