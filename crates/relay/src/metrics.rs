//! `GET /metrics`: the relay's figures in the OpenMetrics text format (prometheus-client, as the
//! sender uses). Every series is labelled by output name, failure kind or rejection reason: all
//! bounded sets, so the cardinality is fixed by the configuration.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `evo_siem_relay_deliveries_total` | `outcome` | deliveries answered: `accepted` (2xx), `rejected` (the SDK's 4xx and 503), `output_failed` (503), `busy` (503, too many at once) |
//! | `evo_siem_relay_events_received_total` | | new events handed to the outputs |
//! | `evo_siem_relay_events_duplicate_total` | | events skipped as already forwarded |
//! | `evo_siem_relay_events_forwarded_total` | `output` | events an output acknowledged (dead letters excluded), counted once the delivery was answered 2xx |
//! | `evo_siem_relay_dead_letters_total` | `output` | events an output refused for good, written to the dead-letter file |
//! | `evo_siem_relay_output_failures_total` | `output`, `kind` | sends that failed, by kind (`connect`, `tls`, `timeout`, `io`, `auth`, `busy`, `http_status`, `bad_response`); `output="dead_letter"` counts dead-letter files that could not be written |
//! | `evo_siem_relay_rejections_total` | `reason` | deliveries the SDK refused, by its reason code |
//! | `evo_siem_relay_output_latency_seconds` | `output` | time of one output's send |
//! | `evo_siem_relay_delivery_latency_seconds` | | time from the request to the answer, for deliveries with new events |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabel {
    output: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    output: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// How a delivery was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Accepted,
    /// The receiver SDK refused it (401, 400, 413, or its own 503s).
    Rejected,
    /// An output did not acknowledge: 503.
    OutputFailed,
    /// Too many deliveries at once: 503.
    Busy,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::OutputFailed => "output_failed",
            Self::Busy => "busy",
        }
    }
}

type HistogramFamily = Family<OutputLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The relay's counters and histograms, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    deliveries: Family<OutcomeLabel, Counter>,
    received: Counter,
    duplicates: Counter,
    forwarded: Family<OutputLabel, Counter>,
    dead_letters: Family<OutputLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
    rejections: Family<ReasonLabel, Counter>,
    output_latency: HistogramFamily,
    delivery_latency: Histogram,
}

impl Metrics {
    /// Registers every metric; the per-output series start at zero for each of `outputs`, so
    /// that a dashboard shows an idle output rather than none.
    pub fn new<'a>(outputs: impl IntoIterator<Item = &'a str>) -> Self {
        let mut registry = Registry::with_prefix("evo_siem_relay");
        let deliveries = Family::<OutcomeLabel, Counter>::default();
        let received = Counter::default();
        let duplicates = Counter::default();
        let forwarded = Family::<OutputLabel, Counter>::default();
        let dead_letters = Family::<OutputLabel, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let rejections = Family::<ReasonLabel, Counter>::default();
        let output_latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let delivery_latency = latency_histogram();
        // Counter names without `_total`: the encoder appends it.
        registry.register(
            "deliveries",
            "Deliveries answered, by outcome",
            deliveries.clone(),
        );
        registry.register(
            "events_received",
            "New events handed to the outputs",
            received.clone(),
        );
        registry.register(
            "events_duplicate",
            "Events skipped as already forwarded",
            duplicates.clone(),
        );
        registry.register(
            "events_forwarded",
            "Events an output acknowledged, once the delivery was answered 2xx",
            forwarded.clone(),
        );
        registry.register(
            "dead_letters",
            "Events an output refused for good, written to the dead-letter file",
            dead_letters.clone(),
        );
        registry.register(
            "output_failures",
            "Output sends that failed, by kind",
            failures.clone(),
        );
        registry.register(
            "rejections",
            "Deliveries refused by the receiver SDK, by reason",
            rejections.clone(),
        );
        registry.register(
            "output_latency_seconds",
            "Time of one output's send",
            output_latency.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "Time from request to answer, for deliveries with new events",
            delivery_latency.clone(),
        );
        for output in outputs {
            let label = OutputLabel {
                output: output.to_owned(),
            };
            drop(forwarded.get_or_create(&label));
            drop(dead_letters.get_or_create(&label));
            drop(output_latency.get_or_create(&label));
        }
        for outcome in [
            Outcome::Accepted,
            Outcome::Rejected,
            Outcome::OutputFailed,
            Outcome::Busy,
        ] {
            drop(deliveries.get_or_create(&OutcomeLabel {
                outcome: outcome.as_str().into(),
            }));
        }
        Self {
            registry,
            deliveries,
            received,
            duplicates,
            forwarded,
            dead_letters,
            failures,
            rejections,
            output_latency,
            delivery_latency,
        }
    }

    pub(crate) fn delivery(&self, outcome: Outcome) {
        self.deliveries
            .get_or_create(&OutcomeLabel {
                outcome: outcome.as_str().into(),
            })
            .inc();
    }

    pub(crate) fn batch(&self, fresh: usize, duplicates: usize) {
        self.received.inc_by(fresh as u64);
        self.duplicates.inc_by(duplicates as u64);
    }

    pub(crate) fn forwarded(&self, output: &str, events: usize) {
        self.forwarded
            .get_or_create(&OutputLabel {
                output: output.to_owned(),
            })
            .inc_by(events as u64);
    }

    pub(crate) fn dead_letters(&self, output: &str, events: usize) {
        self.dead_letters
            .get_or_create(&OutputLabel {
                output: output.to_owned(),
            })
            .inc_by(events as u64);
    }

    pub(crate) fn failure(&self, output: &str, kind: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                output: output.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub(crate) fn rejection(&self, reason: &str) {
        self.rejections
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn output_latency(&self, output: &str, took: Duration) {
        self.output_latency
            .get_or_create(&OutputLabel {
                output: output.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn delivery_latency(&self, took: Duration) {
        self.delivery_latency.observe(took.as_secs_f64());
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
