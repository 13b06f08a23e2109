//! Ingestion: scan runs and observations pushed by scanners in many formats,
//! parsed, attributed, stored and folded into findings.

pub mod formats;
pub mod observation;
pub mod routes;
pub mod store;
