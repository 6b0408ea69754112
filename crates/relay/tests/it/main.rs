//! The relay's integration tests: real sockets, real files, fakes of Splunk HEC and
//! Elasticsearch that follow their documented formats, a real rsyslog when the machine can run
//! one, the conformance receiver suite, and the real sender end to end.

mod common;
mod config;
mod conformance;
mod delivery;
mod elasticsearch;
mod end_to_end;
mod fakes;
mod listener;
mod ocsf;
mod redis;
mod signals;
mod splunk_hec;
mod syslog;
