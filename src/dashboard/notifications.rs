//! `/notifications`: each advisory sent, its deliveries and links.

use axum::Router;

use crate::app::AppState;

pub fn pages() -> Router<AppState> {
    Router::new()
}
