//! Campaigns (advisories): what the centre tells affected organisations
//! about one mass vulnerability, in Norwegian Bokmål and English, with its
//! TLP label, severity, the findings it covers and how its notifications
//! are followed up. A campaign is a draft (edited freely), then active
//! (notified; dated updates are posted), then closed.
//!
//! [`model`] holds the types (TLP with its FIRST wording, the texts, the
//! request and response shapes); [`matching`] the one rule saying which
//! findings a campaign covers, as SQL and as code; [`store`] the domain
//! operations every surface calls, each write one transaction with its
//! audit event; [`markdown`] turns the texts into sanitised HTML and plain
//! text; [`seed`] ships the example campaign; [`routes`] is the REST API.

pub mod markdown;
pub mod matching;
pub mod model;
pub mod routes;
pub mod seed;
pub mod store;

pub use matching::MATCH_SQL;
pub use routes::routes;
