//! What every request of the API gets, whichever route answers it: an id (the client's
//! `X-Request-Id` when sensible, returned, in the request's log lines), and error answers of one
//! JSON shape, the router's own 404, 405 and 413 included.

use evo_siem_sender::service::{Config, Sender};
use evo_siem_sender::store::{Permission, TokenRow, TokenStore};

const INGEST_TOKEN: &str = "ingest-token-for-request-tests";

struct Fixture {
    sender: Sender,
    base: String,
    manage: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    crate::common::logs();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ingest-token"), INGEST_TOKEN).unwrap();
    let config: Config = toml::from_str(&format!(
        r#"
        listen = "127.0.0.1:0"
        data_dir = "{dir}"
        ingest_token_file = "{dir}/ingest-token"
        allow_private_targets = ["127.0.0.1/32"]
        {secrets}
        [[integration]]
        tenant = "acme"
        webhook_url = "http://127.0.0.1:9/webhook"
        "#,
        dir = dir.path().display(),
        secrets = crate::common::secrets_table(dir.path()),
    ))
    .unwrap();
    let sender = Sender::start(&config).await.unwrap();
    let (manage, row) = TokenRow::mint("acme", &[Permission::Manage], "request-tests").unwrap();
    TokenStore::open(dir.path()).unwrap().insert(&row).unwrap();
    Fixture {
        base: format!("http://{}", sender.addr()),
        sender,
        manage,
        _dir: dir,
    }
}

/// The answer's `X-Request-Id`.
fn id_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .expect("every answer has an X-Request-Id")
        .to_str()
        .unwrap()
        .to_owned()
}

fn is_uuid(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_an_id_the_clients_when_it_is_sensible() {
    let f = fixture().await;
    let client = reqwest::Client::new();
    let get = |path: &str, id: Option<&str>| {
        let mut request = client.get(format!("{}{path}", f.base));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    // None given: a new UUID each time, on a route and on the router's 404 alike.
    let (a, b) = (
        get("/healthz", None).await.unwrap(),
        get("/nope", None).await.unwrap(),
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 404));
    let (a, b) = (id_of(&a), id_of(&b));
    assert!(is_uuid(&a) && is_uuid(&b) && a != b, "{a} {b}");
    // A sensible one is kept, up to 128 visible ASCII characters.
    for id in ["req-42", "a7/B:x=y+z.w_1", &"x".repeat(128)] {
        let answer = get("/healthz", Some(id)).await.unwrap();
        assert_eq!(id_of(&answer), id);
    }
    // Hostile ones are replaced: too long, spaces (a text log's field separator), controls,
    // bytes outside ASCII.
    let long = "x".repeat(129);
    let hostile: [&[u8]; 4] = [long.as_bytes(), b"a b", b"a\tb", "caf\u{e9}".as_bytes()];
    for id in hostile {
        let answer = client
            .get(format!("{}/healthz", f.base))
            .header(
                "x-request-id",
                reqwest::header::HeaderValue::from_bytes(id).unwrap(),
            )
            .send()
            .await
            .unwrap();
        let given = id_of(&answer);
        assert!(is_uuid(&given), "{given} for {id:?}");
    }
    f.sender.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_id_is_in_the_log_lines_written_while_answering_it() {
    let f = fixture().await;
    let id = format!("trace-me-{}", uuid::Uuid::new_v4().simple());
    let answer = reqwest::Client::new()
        .put(format!("{}/v1/tenants/acme/siem-integration", f.base))
        .bearer_auth(&f.manage)
        .header("x-request-id", &id)
        .body(r#"{"excluded_actions": ["User login"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(id_of(&answer), id);
    let logged = crate::common::logged();
    let lines: Vec<&str> = logged.lines().filter(|l| l.contains(&id)).collect();
    // The handler's own line, and the layer's.
    assert!(
        lines.iter().any(|l| l.contains("SIEM integration Updated")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("answered") && l.contains("status=200")),
        "{lines:#?}"
    );
    f.sender.shutdown().await;
}

/// An answer's status, headers and JSON body, checked to be the API's error shape: exactly a
/// string `error` and a string `message`, as `application/json`.
async fn error_shape(answer: reqwest::Response) -> (u16, reqwest::header::HeaderMap, String) {
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    assert_eq!(
        headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "{status}"
    );
    let body: serde_json::Value = answer.json().await.unwrap();
    let fields = body.as_object().unwrap();
    assert_eq!(fields.len(), 2, "{body}");
    assert!(body["message"].is_string(), "{body}");
    (status, headers, body["error"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routers_own_refusals_answer_the_handlers_json() {
    let f = fixture().await;
    let client = reqwest::Client::new();
    let settings = format!("{}/v1/tenants/acme/siem-integration", f.base);

    // 404: no such route.
    let answer = client.get(format!("{}/v2/nothing", f.base)).send().await;
    let (status, _, code) = error_shape(answer.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));

    // 405: a route without this method, with the methods it takes.
    let answer = client.delete(format!("{}/healthz", f.base)).send().await;
    let (status, headers, code) = error_shape(answer.unwrap()).await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
    assert_eq!(headers["allow"], "GET,HEAD");
    let answer = client.post(&settings).send().await;
    let (status, headers, _) = error_shape(answer.unwrap()).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET,HEAD,PUT,DELETE");

    // 413: over the route's limit (the body guard's; bounds.rs cuts chunked bodies too).
    let big = vec![b' '; 64 * 1024 + 1];
    let answer = client
        .put(&settings)
        .bearer_auth(&f.manage)
        .body(big)
        .send()
        .await;
    let (status, _, code) = error_shape(answer.unwrap()).await;
    assert_eq!((status, code.as_str()), (413, "body_too_large"));

    // 400 from an extractor: a tenant that is not UTF-8.
    let answer = client
        .get(format!("{}/v1/tenants/%FF/siem-integration", f.base))
        .bearer_auth(&f.manage)
        .send()
        .await;
    let (status, _, code) = error_shape(answer.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "bad_request"));

    // 401 everywhere says how to authenticate, the ingest API and /metrics included.
    for url in [
        format!("{}/metrics", f.base),
        settings.clone(),
        format!("{}/v1/tenants/acme/audit-events", f.base),
    ] {
        let method = if url.ends_with("audit-events") {
            reqwest::Method::POST
        } else {
            reqwest::Method::GET
        };
        let answer = client.request(method, &url).send().await;
        let (status, headers, code) = error_shape(answer.unwrap()).await;
        assert_eq!((status, code.as_str()), (401, "unauthorized"), "{url}");
        assert_eq!(headers["www-authenticate"], "Bearer", "{url}");
    }
    f.sender.shutdown().await;
}
