//! Findings: the deduplicated state of one issue on one service, keyed by
//! (address, port, protocol, check), folded from observations across
//! rescans ([`fold`]), stored with an append-only history ([`store`]),
//! attributed late when the registry learns an owner ([`attribution`]) and
//! read back through the API ([`routes`]).

pub mod attribution;
pub mod fold;
pub mod routes;
pub mod store;
