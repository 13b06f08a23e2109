//! The analysts' dashboard, under `/`: the same database and domain
//! functions as the API, in server-rendered pages for operators (people
//! with a login and a role).
//!
//! Access:
//! - [`operators`]: who may log in, with which role, argon2id passwords,
//!   the lockout after wrong passwords;
//! - [`sessions`]: sessions in PostgreSQL (ids stored as hashes), their
//!   expiry, the [`sessions::Signed`] extractor every page starts with, and
//!   the only `?next=` it follows;
//! - [`totp`]: the optional second factor, its setup and its codes;
//! - [`account`]: an operator's own account (the second factor);
//! - [`routes`]: the router, login, logout, the overview, the operators
//!   list, and what the page modules share ([`routes::Act`] for every form).
//!
//! Pages, one module each, with their queries and templates:
//! - [`overview`]: the situation at a glance, with [`stats`]: the
//!   charts' figures, aggregated ahead, and their SVG drawing;
//! - [`organisations`]: search, detail, create and edit, networks,
//!   contacts, proposed contacts; [`timeline`]: everything that happened
//!   to one organisation;
//! - [`findings`]: the filtered, sortable list, its CSV, one finding,
//!   false positives, the triage queue;
//! - [`campaigns`]: write, preview, activate, approve, update, progress,
//!   close;
//! - [`notifications`]: each advisory sent, its deliveries and their
//!   messages, retry, resend, revoke, reissue;
//! - [`answers`]: what organisations answered, over every notification;
//! - [`escalations`]: reported compromises, a queue analysts take and
//!   close with a note;
//! - [`audit`]: the audit log, filtered and paged;
//! - [`admin`]: registry imports and scan runs (everyone), API tokens and
//!   operators (admins).

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
