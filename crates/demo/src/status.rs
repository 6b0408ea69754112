//! The live status line and the notes printed while the demo runs, on standard error.

use crate::TENANTS;
use crate::tracker::{Tracker, unix_ms};
use evo_siem_mock::MockSiem;
use evo_siem_sender::service::Sender;
use evo_siem_workload::percentiles::Summary;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

/// Prints status lines: rewritten in place on a terminal, every 2 s otherwise.
pub(crate) struct Status {
    pub(crate) terminal: bool,
    pub(crate) last_plain: Option<Instant>,
}

impl Status {
    pub(crate) fn line(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{text}");
        } else if self
            .last_plain
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(2))
        {
            self.last_plain = Some(Instant::now());
            let _ = writeln!(err, "{text}");
        }
        let _ = err.flush();
    }

    pub(crate) fn note(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{text}");
    }
}

pub(crate) fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.0}s", d.as_secs_f64())
    } else if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub(crate) fn status_text(
    t: &Tracker,
    elapsed: Duration,
    sender: &Sender,
    siem: &MockSiem,
    phase: &str,
) -> String {
    let delivered: u64 = TENANTS
        .iter()
        .filter_map(|(tenant, _)| sender.stats(tenant))
        .map(|s| s.delivered.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let ingested: u64 = t.ingested.iter().sum();
    let excluded: u64 = t.excluded.iter().sum();
    let backlog = (ingested - excluded).saturating_sub(t.arrived.len() as u64);
    let now = unix_ms(SystemTime::now());
    let oldest = t.order.front().map_or(Duration::ZERO, |(_, sent)| {
        Duration::from_millis(now.saturating_sub(*sent))
    });
    let latency = Summary::of(&mut t.latencies.clone()).map_or_else(
        || "-".to_owned(),
        |s| format!("{}/{}", ms(s.p50), ms(s.p99)),
    );
    format!(
        "{:>5.1}s  ingested {ingested}  delivered {delivered}  excluded {excluded}  duplicates {}  backlog {backlog}  oldest {}  p50/p99 {latency}  SIEM {phase}",
        elapsed.as_secs_f64(),
        siem.stats().duplicate_events,
        ms(oldest),
    )
}
