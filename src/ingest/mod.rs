//! Ingestion: scan runs and observations pushed by scanners in many formats
//! ([`formats`]), attributed, stored ([`store`]) and folded into findings
//! chunk by chunk ([`chunk`]), by the [`pipeline`]; the HTTP edge is
//! [`routes`]. A body that is a `.csv.gz` or `.csv.zip` file is unpacked
//! on the way in (`unpack`).

pub mod chunk;
pub mod formats;
pub mod idempotency;
pub mod observation;
pub mod pipeline;
pub mod routes;
pub mod scans;
pub mod store;
mod unpack;
