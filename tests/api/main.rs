//! Integration tests: the real service on a free port, a fresh database per
//! test, driven over HTTP and through the `varsel` binary.

mod advisory;
mod attribution;
mod auth;
mod authz;
mod browser;
mod campaigns;
mod compromise_first;
mod dashboard;
mod dashboard_admin;
mod dashboard_campaigns;
mod dashboard_findings;
mod dashboard_flow;
mod dashboard_organisations;
mod end_to_end;
mod findings_timing;
mod health;
mod helpers;
mod import;
mod ingest;
mod ingest_inputs;
mod ingest_shadowserver;
mod intelmq;
mod jobs;
mod notifications;
mod outbox;
mod registry;
mod smtp;
