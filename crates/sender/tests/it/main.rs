//! Integration tests of the sender crate: the spool on SQLite and PostgreSQL, and delivery through
//! the dispatcher to wiremock servers for every row of the retry table.

mod admin;
mod bounds;
mod common;
mod dead_letters;
mod deliver;
mod fuzz;
mod hardening;
mod layers;
mod lease;
mod metrics;
mod openapi;
mod requests;
mod schedule;
mod secrets;
mod service;
mod shared;
mod spool;
