//! The one shape of every error answer of the API: `{"error": CODE, "message": TEXT}` with
//! `Content-Type: application/json`, whoever produces it: a handler, the body guard
//! ([`super::limits`]), the router itself (no such route, 404; no such method, 405), or an axum
//! extractor's rejection (a path that is not UTF-8, a body over `DefaultBodyLimit`).
//!
//! The handlers build theirs with [`response`]; [`not_found`] and [`method_not_allowed`] are the
//! router's fallbacks; [`json_errors`], a layer over the whole router, rewrites whatever error
//! answer is left that is not JSON (axum's rejections answer text/plain) into the same shape,
//! keeping its status and headers. A client therefore parses every refusal the same way.

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer: `status` with the JSON body `{"error": code, "message": message}`. A 401
/// also says how to authenticate (`WWW-Authenticate: Bearer`, RFC 9110 §11.6.1).
pub(crate) fn response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": code, "message": message.into() })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The router's fallback: no route has this path.
pub(crate) async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    response(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no such endpoint: {method} {}", uri.path()),
    )
}

/// The fallback of a route without this method; the router adds the `Allow` header.
pub(crate) async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

/// The code of an error answer that came without one, by its status.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "body_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        status if status.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// Rewrites an error answer (4xx, 5xx) whose body is not JSON into [`response`]'s shape, with
/// its status and headers kept; the text it carried becomes the message (a rejection's text
/// names what was wrong, never a secret: it describes the request's framing, not its values).
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let answer = next.run(request).await;
    let status = answer.status();
    let is_json = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return answer;
    }
    let (mut parts, body) = answer.into_parts();
    // A rejection's text is a sentence; anything longer is cut rather than buffered.
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_owned()
    } else {
        text
    };
    let rewritten = response(status, code_of(status), message);
    parts.headers.remove(header::CONTENT_LENGTH);
    let (new_parts, body) = rewritten.into_parts();
    for (name, value) in &new_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::extract::DefaultBodyLimit;
    use axum::routing::post;
    use tower::ServiceExt;

    async fn call(router: Router, request: Request) -> (StatusCode, serde_json::Value) {
        let answer = router.oneshot(request).await.unwrap();
        let status = answer.status();
        assert_eq!(
            answer.headers()[header::CONTENT_TYPE],
            "application/json",
            "{status}"
        );
        let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// axum's own 413 (a body over `DefaultBodyLimit`, read by an extractor) and its text/plain
    /// rejections come out in the API's shape.
    #[tokio::test]
    async fn axum_rejections_answer_the_api_shape() {
        let router = Router::new()
            .route(
                "/echo/{name}",
                post(|_: axum::extract::Path<String>, body: axum::body::Bytes| async move { body }),
            )
            .layer(DefaultBodyLimit::max(8))
            .layer(axum::middleware::from_fn(json_errors));
        let too_large = Request::post("/echo/x")
            .body(Body::from("more than eight bytes"))
            .unwrap();
        let (status, body) = call(router.clone(), too_large).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"], "body_too_large");
        assert!(body["message"].as_str().unwrap().contains("length limit"));
        let not_utf8 = Request::post("/echo/%FF").body(Body::empty()).unwrap();
        let (status, body) = call(router, not_utf8).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "bad_request");
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
}
