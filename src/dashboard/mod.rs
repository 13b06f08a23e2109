//! The analysts' dashboard, under `/`: the same database and domain
//! functions as the API, in server-rendered pages for operators (people
//! with a login and a role). So far its access layer and first pages:
//!
//! - [`operators`]: who may log in, with which role, argon2id passwords,
//!   the lockout after wrong passwords;
//! - [`sessions`]: sessions in PostgreSQL (ids stored as hashes), their
//!   expiry, the [`sessions::Signed`] extractor every page starts with, and
//!   the only `?next=` it follows;
//! - [`totp`]: the optional second factor, its setup and its codes;
//! - [`account`]: an operator's own account (the second factor);
//! - [`overview`]: the situation at a glance, with [`stats`]: the
//!   charts' figures, aggregated ahead, and their SVG drawing;
//! - [`audit`]: the audit log, filtered and paged;
//! - [`timeline`]: everything that happened to one organisation;
//! - [`answers`]: what organisations answered, over every notification;
//! - [`escalations`]: reported compromises, a queue analysts take and
//!   close with a note;
//! - [`routes`]: login, logout, the overview, the operators (admins).

pub mod account;
pub mod admin;
pub mod answers;
pub mod audit;
pub mod campaigns;
pub mod escalations;
pub mod findings;
pub mod notifications;
pub mod operators;
pub mod organisations;
pub mod overview;
pub mod routes;
pub mod sessions;
pub mod stats;
pub mod timeline;
pub mod totp;
