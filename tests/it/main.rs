//! Tessera's integration tests, one binary: each module starts real
//! servers (in-process, or the built `tessera` binary) against SQLite and
//! PostgreSQL, SoftHSM2 and the KMS emulator, and talks to them as clients
//! do. One binary links once instead of once per file (each file used to be
//! its own binary of about 400 MB, built with its own copy of `common`).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

mod acme_bad_input;
mod acme_binding;
mod acme_eab_limits;
mod acme_flow;
mod acme_lifecycle;
mod acme_validation;
mod admin_api;
mod admin_cli;
mod admin_scopes;
mod admin_tokens;
mod agent;
mod availability;
mod certificate_search;
mod cli;
mod cluster;
mod compromised_keys;
mod custody;
mod database_outage;
mod docs;
mod idempotency;
mod interrupted_issuance;
mod lifecycle_e2e;
mod lifecycle_expiry;
mod lifecycle_rotation;
mod lint_before_signature;
mod listeners;
mod pkilint;
mod readme;
mod refusals;
mod retention;
mod revocation;
mod revocation_status;
mod schema_parity;
mod secrets;
mod signers;
mod storage;
mod vault;
