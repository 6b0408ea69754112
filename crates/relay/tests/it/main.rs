//! The relay's integration tests: real sockets, real files, fakes of Splunk HEC and
//! Elasticsearch that follow their documented formats, and a real rsyslog when the machine
//! can run one.

mod common;
mod config;
mod delivery;
mod elasticsearch;
mod fakes;
mod splunk_hec;
mod syslog;
