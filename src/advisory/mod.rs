//! The organisation's advisory page, `/a/{token}`: where a warning becomes
//! action. Each notification's private link opens a page, in the
//! organisation's language, with the advisory, its updates and the
//! organisation's own findings, and forms to answer: acknowledged, fixed
//! (re-check), false positive, not ours, signs of compromise, a comment, a
//! new contact address; and the findings as CSV and JSON.
//!
//! - [`access`]: live links only, rate-limited per client address;
//! - [`view`] reads what the page shows and counts the opens;
//!   [`page`] renders it (`templates/advisory`), in the words of [`texts`];
//! - [`answers`] reads and records the answers and what they change;
//! - [`routes`] is the page surface (served by `web`), [`api`] the REST
//!   side for analysts and scanners (responses, escalations, re-checks,
//!   proposed contacts, revoking and reissuing links) over [`store`].

pub mod access;
pub mod answers;
pub mod api;
pub mod page;
pub mod routes;
pub mod store;
pub mod texts;
pub mod view;
