//! Logging for the long-running subcommands: `tracing` to stderr, filtered by `RUST_LOG`.

/// Installs the subscriber; `default` is the filter used when `RUST_LOG` is unset.
pub(crate) fn init(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
