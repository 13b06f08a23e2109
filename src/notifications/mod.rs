//! Notifications: for an active campaign, one per organisation with open
//! matching findings, grouping all of them, with a ticket reference and
//! private advisory links; and every mail that follows from it — the
//! advisory, reminders, campaign updates, follow-ups for new hosts,
//! re-alerts on compromise, the closing mail — each decided and queued in
//! the outbox in one transaction, so that nothing is lost and nothing is
//! sent twice however often the jobs run.
//!
//! - [`drafting`] keeps the notifications in step with the findings (a job
//!   after every ingest, registry change and activation);
//! - [`mailing`] turns decisions into outbox rows (approval, reminders,
//!   updates, follow-ups, re-alerts, closing);
//! - [`recipients`] says who gets a notification's mail;
//! - [`render`] builds the mails from the `templates/mail` templates;
//! - [`store`] reads notifications, their findings and timeline;
//! - [`routes`] is the REST surface.

pub mod drafting;
pub mod mailing;
pub mod model;
pub mod recipients;
pub mod render;
pub mod routes;
pub mod sectors;
pub mod store;
pub mod texts;
pub mod tokens;
