//! Findings: the deduplicated state of one issue on one service, keyed by
//! (address, port, protocol, check), folded from observations across
//! rescans ([`fold`]), stored with an append-only history ([`store`]),
//! attributed late when the registry learns an owner ([`attribution`]),
//! read by every surface through one typed filter ([`query`]) and over
//! REST ([`routes`]).

pub mod attribution;
pub mod fold;
pub mod query;
pub mod routes;
pub mod store;
