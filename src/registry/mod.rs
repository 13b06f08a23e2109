//! The registry of who owns which addresses: organisations with their
//! contacts, networks (with validity history), ASNs and domains. The domain
//! operations live in [`organisations`], [`contacts`], [`networks`] and
//! [`domains`] (each write one transaction with its audit event, for every
//! surface to call); [`routes`] is the REST API over them; [`import`] holds
//! the importers.

pub mod contacts;
pub mod domains;
pub mod import;
pub mod model;
pub mod networks;
pub mod organisations;
pub mod routes;

pub use routes::routes;
