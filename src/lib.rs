//! Varsel: the service a national cyber security centre runs when a mass
//! vulnerability hits. Scanners push results (`ingest`), every result is
//! attributed to the organisation owning the address (`registry`,
//! `attribution`) and folded into findings that live across rescans
//! (`findings`); campaigns tell the owners what to do about it
//! (`campaigns`, `notifications`), and what Varsel sends leaves through the
//! e-mail outbox (`mail`). Each organisation reads and answers its
//! advisory on a private page (`advisory`), served by the HTML edge
//! (`web`), which the analysts' dashboard (`dashboard`) shares.

pub mod advisory;
pub mod app;
pub mod attribution;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod campaigns;
pub mod checks;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod domain;
pub mod error;
pub mod findings;
pub mod health;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod notifications;
pub mod openapi;
pub mod rate_limit;
pub mod registry;
pub mod telemetry;
pub mod web;
