//! A complete receiver: verifies, deduplicates and prints each new Evo audit event's JSON as received.
//!
//! ```sh
//! EVO_SIEM_SECRET=change-me cargo run -p evo-siem-receiver --example print_events
//! ```
//!
//! Settings (environment): `EVO_SIEM_SECRET` (several secrets separated by commas during a
//! rotation), `EVO_SIEM_LISTEN` (default `127.0.0.1:8080`), `RUST_LOG` (for example
//! `evo_siem_receiver=debug` to see every rejection and its reason).

use axum::{Router, routing::post};
use evo_siem_receiver::{Delivered, Receiver, Rejection, VerifiedBatch};
use std::io::Write;

/// The whole application: print the fresh events, then commit so that the 200 goes out.
async fn webhook(batch: VerifiedBatch) -> Result<Delivered, Rejection> {
    {
        let mut out = std::io::stdout().lock();
        for event in batch.raw_events() {
            // The raw JSON keeps every field, including ones this SDK version does not know.
            let _ = writeln!(out, "{}", event.raw_json());
        }
    }
    tracing::info!(
        delivery = ?batch.delivery_id(),
        attempt = ?batch.attempt(),
        fresh = batch.raw_events().len(),
        duplicates = batch.duplicates(),
        "batch accepted"
    );
    batch.commit().await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,evo_siem_receiver=debug".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let secrets = std::env::var("EVO_SIEM_SECRET")
        .map_err(|_| "set EVO_SIEM_SECRET to the signing secret")?;
    let mut builder = Receiver::builder();
    for secret in secrets.split(',').filter(|s| !s.is_empty()) {
        builder = builder.secret(secret);
    }
    let receiver = builder.build()?;

    let listen = std::env::var("EVO_SIEM_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let app = Router::new()
        .route("/webhook", post(webhook))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!("listening on http://{}/webhook", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
