//! Integration tests of the sender crate: the SQLite spool's behaviour on a real file.

mod spool;
