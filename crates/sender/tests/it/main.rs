//! Integration tests of the sender crate: the SQLite spool on a real file, and delivery through
//! the dispatcher to wiremock servers for every row of the retry table.

mod admin;
mod common;
mod deliver;
mod service;
mod spool;
