//! Findings: the deduplicated state of one issue on one service, folded from
//! observations across rescans, with an append-only history.

pub mod attribution;
pub mod routes;
