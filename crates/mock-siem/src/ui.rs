//! The mock SIEM in the browser: the routes of the page at `GET /`.
//!
//! - `GET /`: the deliveries (newest first), the stats, the rules in force, and the fault
//!   forms. Rendered on the server ([`crate::page`]); without JavaScript it reloads every 10 s.
//! - `GET /_mock/ui/stream`: server-sent events, one `live` event with the re-rendered live part
//!   of the page on connecting and after each change (at most four a second). Changes come
//!   through a watch channel, which holds one version number whatever the number of viewers.
//! - `GET /_mock/ui/live.js`: the small script that swaps the live part in.
//! - `GET /_mock/ui/deliveries/{n}`: delivery `n` (counted from 1), with its events' raw JSON.
//! - `POST /_mock/ui/faults` (the fault form), `POST /_mock/ui/faults/clear`,
//!   `POST /_mock/ui/records/clear`: form posts that answer `303 See Other` back to `/`. They are
//!   refused (403) when the browser says the form came from another site, so that a page
//!   elsewhere cannot set faults through a visitor's browser.
//!
//! Every page carries a Content-Security-Policy that allows only this server's script, so even
//! an escaping mistake could not run a script recorded in an event.

use crate::Shared;
use crate::fault_form::{self, Mode};
use crate::page::{self, DeliveryView, Snapshot};
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// The latest deliveries the main page lists; `GET /_mock/deliveries` has them all.
const SHOWN: usize = 100;
/// The least time between two pushes to one viewer: a busy sender must not make the mock
/// render the page hundreds of times a second.
const PUSH_EVERY: Duration = Duration::from_millis(250);
/// The largest form body accepted.
const FORM_LIMIT: usize = 16 * 1024;

const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                   style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; \
                   base-uri 'none'; frame-ancestors 'none'";

/// The page's routes, to merge into the mock's router.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(index))
        .route(page::SCRIPT_PATH, get(script))
        .route(page::STREAM_PATH, get(stream))
        .route(&format!("{}{{number}}", page::DELIVERY_PATH), get(delivery))
        .route(page::FAULTS_PATH, post(set_fault))
        .route(page::CLEAR_FAULTS_PATH, post(clear_faults))
        .route(page::CLEAR_RECORDS_PATH, post(clear_records))
}

/// Copies what the main page shows, one lock at a time.
fn snapshot(shared: &Shared) -> Snapshot {
    let (stats, recent, total) = {
        let records = shared.records();
        let recent = records
            .deliveries
            .iter()
            .enumerate()
            .rev()
            .take(SHOWN)
            .map(|(i, d)| (i + 1, d.clone()))
            .collect();
        (records.stats.clone(), recent, records.deliveries.len())
    };
    let (rules, requests) = {
        let faults = shared.faults();
        (faults.rules().to_vec(), faults.requests())
    };
    Snapshot {
        stats,
        recent,
        total,
        rules,
        requests,
        path: shared.path.clone(),
        secrets: shared.secrets,
    }
}

/// An HTML answer with the page's security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn refusal(status: StatusCode, title: &str, text: &str) -> Response {
    html(status, page::message(title, text))
}

/// Back to the main page after a form post.
fn see_main_page() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
}

async fn index(State(shared): State<Arc<Shared>>) -> Response {
    html(StatusCode::OK, page::index(&snapshot(&shared)))
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("live.js"),
    )
        .into_response()
}

async fn stream(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let changes = shared.changes.subscribe();
    let events = futures_util::stream::unfold(
        (shared, changes, true),
        |(shared, mut changes, first)| async move {
            if first {
                changes.mark_unchanged();
            } else {
                tokio::time::sleep(PUSH_EVERY).await;
                // The sender lives as long as `shared`, which this stream holds: this only
                // ends with the connection.
                changes.changed().await.ok()?;
            }
            let live = page::live(&snapshot(&shared));
            let event = Event::default().event("live").data(live);
            Some((Ok(event), (shared, changes, false)))
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn delivery(State(shared): State<Arc<Shared>>, Path(number): Path<String>) -> Response {
    let view = number.parse::<usize>().ok().and_then(|number| {
        let records = shared.records();
        let delivery = records.deliveries.get(number.checked_sub(1)?)?.clone();
        let events = delivery
            .events
            .iter()
            .map(|uuid| {
                let event = records
                    .seen
                    .get(&crate::event_key(uuid))
                    .and_then(|&i| records.events.get(i))
                    .cloned();
                (uuid.clone(), event)
            })
            .collect();
        Some(DeliveryView {
            number,
            delivery,
            events,
        })
    });
    match view {
        Some(view) => html(StatusCode::OK, page::delivery(&view)),
        None => refusal(
            StatusCode::NOT_FOUND,
            "No such delivery",
            &format!(
                "There is no delivery #{number} (anymore): deliveries are numbered from 1, and forgetting them starts again."
            ),
        ),
    }
}

/// Whether the browser says the request comes from a page of another origin. `Sec-Fetch-Site`
/// when the browser sends it, else `Origin` against `Host`; a request with neither (`curl`)
/// passes.
fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        return !matches!(site, "same-origin" | "none");
    }
    match (text(header::ORIGIN), text(header::HOST)) {
        (None, _) => false,
        (Some(origin), Some(host)) => {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                != Some(host)
        }
        (Some(_), None) => true,
    }
}

fn forbidden_cross_site() -> Response {
    tracing::warn!("mock SIEM page: refused a form posted from another site");
    refusal(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was posted from another site. Use the mock SIEM's own page, or its JSON API.",
    )
}

async fn set_fault(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if cross_site(&parts.headers) {
        return forbidden_cross_site();
    }
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Not a form",
            "Post the fault form as application/x-www-form-urlencoded (the JSON API is POST /_mock/faults).",
        );
    }
    let Ok(body) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form too large",
            "The fault form's body is limited to 16 KiB.",
        );
    };
    let form = match fault_form::parse(&body) {
        Ok(form) => form,
        Err(err) => {
            return refusal(
                StatusCode::BAD_REQUEST,
                "The fault was not set",
                &format!("The fault was not set: {err}."),
            );
        }
    };
    let shown = {
        // One lock for reading and setting, so that two posts at once cannot lose a rule.
        let mut faults = shared.faults();
        let mut rules = match form.mode {
            Mode::Replace => Vec::new(),
            Mode::Add => faults.rules().to_vec(),
        };
        rules.push(form.rule);
        let shown: Vec<String> = rules.iter().map(ToString::to_string).collect();
        faults.set(rules);
        shown
    };
    shared.changed();
    tracing::info!(rules = %shown.join("; "), "mock SIEM faults set from the page");
    see_main_page()
}

async fn clear_faults(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if cross_site(&headers) {
        return forbidden_cross_site();
    }
    tracing::info!("mock SIEM faults cleared from the page");
    shared.set_faults(Vec::new());
    see_main_page()
}

async fn clear_records(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if cross_site(&headers) {
        return forbidden_cross_site();
    }
    tracing::info!("mock SIEM records cleared from the page");
    shared.clear_records();
    see_main_page()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    header::HeaderName::from_static(n),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn only_forms_from_this_origin_pass() {
        assert!(!cross_site(&headers(&[])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "none")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!cross_site(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(cross_site(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(cross_site(&headers(&[
            ("origin", "null"),
            ("host", "127.0.0.1:8080")
        ])));
    }
}
