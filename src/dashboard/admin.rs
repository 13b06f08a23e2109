//! Admin pages: registry imports and scan runs, API tokens and operators.

use axum::Router;

use crate::app::AppState;

pub fn pages() -> Router<AppState> {
    Router::new()
}
