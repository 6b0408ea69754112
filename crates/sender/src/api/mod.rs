//! The HTTP API on the sender's listener: ingest (`ingest.rs`; its body parser is
//! [`parse_ingest_body`], public for the fuzz target), the tenant admin API
//! ([`admin`]), `/metrics` (`metrics.rs`), `/healthz` and the OpenAPI document, each route with
//! a body limit fitting its job ([`limits`]). Every request gets an id ([`request_id`]), and
//! every error answer, the router's own included, has one JSON shape (`errors.rs`).
//!
//! The handlers share one `App`: the integration store, the spool, the scheduler they tell of
//! new work, the delivery counters. They sit above everything else: nothing below this module
//! knows it exists.

pub mod admin;
mod errors;
mod ingest;
pub mod limits;
pub(crate) mod metrics;
pub mod request_id;

pub use ingest::{InvalidEvent, parse_ingest_body};
pub use metrics::{MetricsConfig, WAITING_ATTENTION};

use crate::DeliveryStats;
use crate::dispatch::Dispatcher;
use crate::schedule::{Scheduler, StatsMap};
use crate::spool::Spool;
use crate::store::{IntegrationStore, Registry};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};
use limits::{BodyLimit, MAX_SETTINGS_BYTES, MAX_SMALL_BYTES};
use std::sync::Arc;
use std::time::Duration;

/// The largest ingest request body, in bytes.
pub const MAX_INGEST_BYTES: usize = 16 * 1024 * 1024;

/// What every request handler shares.
pub(crate) struct App {
    pub(crate) ingest_token: String,
    /// The integration settings and admin tokens, local or shared with other instances.
    pub(crate) store: Arc<IntegrationStore>,
    /// The integrations in force (the store's), read on the hot paths.
    pub(crate) registry: Arc<Registry>,
    pub(crate) spool: Arc<dyn Spool>,
    /// The outbound guard's allow-list, for validating webhook URLs.
    pub(crate) allowed: Vec<ipnet::IpNet>,
    /// Each integration's delivery counters.
    pub(crate) stats: StatsMap,
    /// The client of real deliveries, for "Test Saved Webhook".
    pub(crate) dispatcher: Dispatcher,
    /// Told of ingests and resumes.
    pub(crate) scheduler: Scheduler,
    /// What `/metrics` shows.
    pub(crate) metrics: MetricsConfig,
}

impl App {
    /// The counters of `tenant`'s integration, shared by the ingest API and its worker
    /// (created here when the worker has not started yet).
    pub(crate) fn stats_of(&self, tenant: &str) -> Arc<DeliveryStats> {
        crate::schedule::stats_entry(&self.stats, tenant)
    }
}

/// How slowly a request body may arrive (`[listener]`): after `grace`, at an average of at
/// least `min_bytes_per_sec`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyPace {
    pub(crate) grace: Duration,
    pub(crate) min_bytes_per_sec: u64,
}

/// Every route of the listener, each reading its body under a limit fitting its job.
pub(crate) fn router(app: Arc<App>, pace: BodyPace) -> Router {
    let limited = |route: MethodRouter<Arc<App>>, max: usize| {
        route.layer(axum::middleware::from_fn_with_state(
            BodyLimit {
                max,
                grace: pace.grace,
                min_bytes_per_sec: pace.min_bytes_per_sec,
            },
            limits::guard,
        ))
    };
    Router::new()
        .route(
            "/v1/tenants/{tenant}/audit-events",
            limited(post(ingest::ingest), MAX_INGEST_BYTES),
        )
        .route(
            "/v1/tenants/{tenant}/siem-integration",
            limited(
                get(admin::settings::get)
                    .put(admin::settings::put)
                    .delete(admin::settings::delete),
                MAX_SETTINGS_BYTES,
            ),
        )
        .route(
            "/v1/tenants/{tenant}/siem-integration/test",
            limited(post(admin::webhook_test::test), MAX_SMALL_BYTES),
        )
        .route(
            "/v1/tenants/{tenant}/siem-integration/status",
            limited(get(admin::operations::status), MAX_SMALL_BYTES),
        )
        .route(
            "/v1/tenants/{tenant}/siem-integration/dead-letters",
            limited(get(admin::operations::dead_letters), MAX_SMALL_BYTES),
        )
        .route(
            "/v1/tenants/{tenant}/siem-integration/dead-letters/replay",
            limited(post(admin::operations::replay), MAX_SMALL_BYTES),
        )
        .route(
            "/v1/tenants/{tenant}/siem-integration/resume",
            limited(post(admin::operations::resume), MAX_SMALL_BYTES),
        )
        .route("/metrics", limited(get(metrics::metrics), MAX_SMALL_BYTES))
        .route(
            "/v1/openapi.json",
            limited(get(admin::openapi), MAX_SMALL_BYTES),
        )
        .route("/healthz", limited(get(|| async { "ok" }), MAX_SMALL_BYTES))
        .fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        // The guard has buffered the body by then; the extractors' own limit (2 MB by
        // default) must not cut an ingest below its 16 MiB.
        .layer(DefaultBodyLimit::max(MAX_INGEST_BYTES))
        // Whatever error answer is left in text (an extractor's rejection) becomes JSON.
        .layer(axum::middleware::from_fn(errors::json_errors))
        // Outermost, so that everything above runs inside the request's span.
        .layer(axum::middleware::from_fn(request_id::layer))
        .with_state(app)
}
