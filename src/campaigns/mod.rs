//! Campaigns (advisories): what the centre tells affected organisations
//! about one mass vulnerability, in Norwegian Bokmål and English.
//!
//! [`markdown`] turns the texts into sanitised HTML and plain text.

pub mod markdown;
