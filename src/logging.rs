//! Logging for the long-running subcommands: `tracing` to stderr, filtered by `RUST_LOG`, as
//! text or as JSON lines (`--log-format`).

use crate::cli::LogFormat;

/// Installs the subscriber; `default` is the filter used when `RUST_LOG` is unset.
///
/// JSON lines carry the event's fields (`fields`), its target and level, and the fields of the
/// spans it happened in (`span`, the innermost, and `spans`, all of them from the outside in),
/// so that a line logged while the sender's API answers a request holds that request's
/// `request_id`.
pub(crate) fn init(format: LogFormat, default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
