//! Findings: the deduplicated state of one issue on one service, keyed by
//! (address, port, protocol, check), folded from observations across
//! rescans ([`fold`]) as a function of the set of their inputs (folded in
//! place or replayed: [`writer`], [`replay`], [`coverage`]), stored with
//! their history ([`store`]),
//! attributed late when the registry learns an owner ([`attribution`]),
//! read by every surface through one typed filter ([`query`]) and over
//! REST ([`routes`]).

pub mod attribution;
pub mod closing;
pub mod coverage;
pub mod fold;
pub mod query;
pub mod replay;
pub mod routes;
pub mod store;
pub mod writer;
