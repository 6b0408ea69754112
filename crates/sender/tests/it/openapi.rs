//! The OpenAPI document at `GET /v1/openapi.json` is true: every operation is called in every
//! status the document lists for it (the framing errors, a broken store and a stale instance
//! included), and each real answer is checked against the document: its status is listed, its
//! documented headers are there with values their schemas take, no `Retry-After` or
//! `WWW-Authenticate` comes undocumented, its media type is listed and its JSON body validates
//! against the schema (which refuses unknown fields). A documented status that the test cannot
//! produce must be named, with why, in [`NOT_PRODUCED`]; the request bodies sent as valid are
//! validated against the documented request schemas; and each path's `Allow` (from a 405) is
//! exactly its documented methods.

use crate::admin::{Fixture, INGEST_TOKEN, fixture_tuned, ingest_body};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Documented statuses the test does not produce, and why they cannot be produced from outside.
const NOT_PRODUCED: &[(&str, u16, &str)] = &[(
    "getMetrics",
    500,
    "rendering the metrics into a String cannot fail; documented for the branch that handles it",
)];

/// A real answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// Escapes a JSON pointer token, and what a URL fragment does not take.
fn token(key: &str) -> String {
    key.replace('~', "~0")
        .replace('/', "~1")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// The document and what has been checked against it.
struct Doc {
    doc: Value,
    compiler: boon::Compiler,
    schemas: boon::Schemas,
    compiled: HashMap<String, boon::SchemaIndex>,
    /// Each operation's statuses answered so far.
    seen: BTreeMap<String, BTreeSet<u16>>,
}

impl Doc {
    fn new(doc: Value) -> Self {
        let mut compiler = boon::Compiler::new();
        compiler.enable_format_assertions();
        compiler.add_resource("openapi.json", doc.clone()).unwrap();
        Self {
            doc,
            compiler,
            schemas: boon::Schemas::new(),
            compiled: HashMap::new(),
            seen: BTreeMap::new(),
        }
    }

    /// Every operation: its id, method and path.
    fn operations(&self) -> Vec<(String, String, String)> {
        let mut all = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let id = operation["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
                all.push((id.to_owned(), method.to_uppercase(), path.clone()));
            }
        }
        all
    }

    /// The operation `id`: its method, path, and the JSON pointer of its object.
    fn operation(&self, id: &str) -> (String, String, String) {
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if operation["operationId"] == id {
                    let pointer = format!("/paths/{}/{method}", token(path));
                    return (method.to_uppercase(), path.clone(), pointer);
                }
            }
        }
        panic!("no operation {id} in the document");
    }

    /// The value at `pointer`, following a `$ref` there; and the pointer it ends at.
    fn resolve(&self, pointer: &str) -> (String, &Value) {
        let unescaped = pointer.replace("%7B", "{").replace("%7D", "}");
        let value = self
            .doc
            .pointer(&unescaped)
            .unwrap_or_else(|| panic!("nothing at {pointer}"));
        match value["$ref"].as_str() {
            Some(reference) => self.resolve(reference.trim_start_matches('#')),
            None => (pointer.to_owned(), value),
        }
    }

    /// Validates `instance` against the schema at `pointer`.
    fn validate(&mut self, pointer: &str, instance: &Value) -> Result<(), String> {
        let location = format!("openapi.json#{pointer}");
        let index = match self.compiled.get(&location) {
            Some(index) => *index,
            None => {
                let index = self
                    .compiler
                    .compile(&location, &mut self.schemas)
                    .unwrap_or_else(|e| panic!("{location}: {e}"));
                self.compiled.insert(location, index);
                index
            }
        };
        self.schemas
            .validate(instance, index)
            .map_err(|e| format!("{e:#}"))
    }

    /// Checks a JSON request body sent as valid against the operation's request schema.
    fn check_request(&mut self, id: &str, body: &str) {
        let (_, _, pointer) = self.operation(id);
        let schema = format!("{pointer}/requestBody/content/application~1json/schema");
        let value: Value = serde_json::from_str(body).unwrap();
        if let Err(err) = self.validate(&schema, &value) {
            panic!("{id}: the request body the test sends as valid is refused: {err}\n{body}");
        }
    }

    /// Checks one real answer of operation `id` against the document.
    fn check(&mut self, id: &str, answer: &Answer) {
        let (method, path, pointer) = self.operation(id);
        let what = format!("{id} ({method} {path}) answered {}", answer.status);
        let text = String::from_utf8_lossy(&answer.body).into_owned();
        let documented = format!("{pointer}/responses/{}", answer.status);
        if self
            .doc
            .pointer(&documented.replace("%7B", "{").replace("%7D", "}"))
            .is_none()
        {
            panic!("{what}, which is not documented: {text}");
        }
        let (response, value) = self.resolve(&documented);
        let value = value.clone();
        // Headers: the documented ones present and valid; the ones that matter documented.
        let headers = value["headers"].as_object().cloned().unwrap_or_default();
        for name in headers.keys() {
            let (header_pointer, header) =
                self.resolve(&format!("{response}/headers/{}", token(name)));
            let header = header.clone();
            let Some(received) = answer.headers.get(name.as_str()) else {
                assert!(
                    header["required"] != true,
                    "{what} without the required header {name}"
                );
                continue;
            };
            let received = received.to_str().unwrap();
            let as_json = if header["schema"]["type"] == "integer" {
                received
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(received))
            } else {
                Value::from(received)
            };
            if let Err(err) = self.validate(&format!("{header_pointer}/schema"), &as_json) {
                panic!("{what}: header {name}: {received:?}: {err}");
            }
        }
        for name in ["retry-after", "www-authenticate", "x-request-id"] {
            if answer.headers.contains_key(name) {
                assert!(
                    headers.keys().any(|h| h.eq_ignore_ascii_case(name)),
                    "{what} with {name}, not documented for this status"
                );
            }
        }
        // The body: its media type listed, its JSON valid.
        let Some(content) = value["content"].as_object() else {
            assert!(
                answer.body.is_empty(),
                "{what} with a body, none documented: {text}"
            );
            self.record(id, answer.status);
            return;
        };
        let media = answer
            .headers
            .get("content-type")
            .map(|v| {
                v.to_str()
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .trim()
                    .to_owned()
            })
            .unwrap_or_default();
        assert!(
            content.contains_key(&media),
            "{what} as {media:?}, documented: {:?}",
            content.keys().collect::<Vec<_>>()
        );
        let schema = format!("{response}/content/{}/schema", token(&media));
        let instance = if media == "application/json" {
            serde_json::from_slice(&answer.body)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
        } else {
            Value::from(text.clone())
        };
        if let Err(err) = self.validate(&schema, &instance) {
            panic!("{what}: the body does not match {schema}: {err}\n{text}");
        }
        self.record(id, answer.status);
    }

    fn record(&mut self, id: &str, status: u16) {
        self.seen.entry(id.to_owned()).or_default().insert(status);
    }

    /// Each operation's documented statuses that were not answered.
    fn unanswered(&self) -> BTreeSet<(String, u16)> {
        let mut missing = BTreeSet::new();
        for (id, method, path) in self.operations() {
            let operation = &self.doc["paths"][&path][method.to_lowercase()];
            for status in operation["responses"].as_object().unwrap().keys() {
                let status: u16 = status.parse().unwrap();
                if !self.seen.get(&id).is_some_and(|s| s.contains(&status)) {
                    missing.insert((id.clone(), status));
                }
            }
        }
        missing
    }
}

/// Who calls.
#[derive(Debug, Clone, Copy)]
enum As {
    Nobody,
    Manager,
    Viewer,
    OtherTenant,
    Platform,
}

struct Client<'a> {
    f: &'a Fixture,
    http: reqwest::Client,
}

impl Client<'_> {
    fn token(&self, caller: As) -> Option<&str> {
        match caller {
            As::Nobody => None,
            As::Manager => Some(&self.f.manage),
            As::Viewer => Some(&self.f.view),
            As::OtherTenant => Some(&self.f.other_tenant),
            As::Platform => Some(INGEST_TOKEN),
        }
    }

    /// Calls operation `id` of `doc` for `tenant`, with `query` and `body`.
    async fn call(
        &self,
        doc: &Doc,
        id: &str,
        caller: As,
        tenant: &str,
        query: &str,
        body: Option<&str>,
    ) -> Answer {
        let (method, path, _) = doc.operation(id);
        let url = format!("{}{}{query}", self.f.base, path.replace("{tenant}", tenant));
        let mut request = self.http.request(method.parse().unwrap(), url);
        if let Some(token) = self.token(caller) {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }
}

/// Sends `head` then `body` on a connection of its own and reads the whole answer (the request
/// says `Connection: close`).
async fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer head: {}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            http::HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    let mut body = bytes[split + 4..].to_vec();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v == "chunked")
    {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16).unwrap();
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[end + 2..end + 2 + size]);
            rest = &rest[end + 2 + size + 2..];
        }
        body = decoded;
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// The framing refusals every route can give, whatever its operation: a declared body over
/// every limit (413), a body that never comes (408), a chunked body that is not chunked (400).
async fn framing(doc: &mut Doc, f: &Fixture, id: &str) {
    let (method, path, _) = doc.operation(id);
    let target = path.replace("{tenant}", "acme");
    let addr = f.sender.addr();
    let head = |extra: &str| {
        format!(
            "{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n{extra}\r\n",
            f.manage
        )
    };
    let too_large = raw(addr, &head("Content-Length: 17000000\r\n"), b"").await;
    assert_eq!(too_large.status, 413, "{id}: {:?}", too_large.json());
    doc.check(id, &too_large);
    let stalled = raw(addr, &head("Content-Length: 10\r\n"), b"").await;
    assert_eq!(stalled.status, 408, "{id}: {:?}", stalled.json());
    doc.check(id, &stalled);
    let garbled = raw(addr, &head("Transfer-Encoding: chunked\r\n"), b"zz\r\n\r\n").await;
    assert_eq!(garbled.status, 400, "{id}: {:?}", garbled.json());
    doc.check(id, &garbled);
}

/// Renames PostgreSQL tables of the sender's spool (`from` to `to` each).
async fn rename(f: &Fixture, tables: &[(&str, &str)]) {
    let url = &f.db.as_ref().unwrap().url;
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let statements: Vec<String> = tables
        .iter()
        .map(|(from, to)| format!("ALTER TABLE {from} RENAME TO {to};"))
        .collect();
    client
        .batch_execute(&format!("BEGIN; {} COMMIT;", statements.concat()))
        .await
        .unwrap();
}

/// The admin operations, each with the body it is called with.
const ADMIN: [(&str, Option<&str>); 9] = [
    ("getSiemIntegration", None),
    (
        "putSiemIntegration",
        Some(r#"{"excluded_actions": ["User login"]}"#),
    ),
    ("testSiemIntegration", None),
    ("getSiemIntegrationStatus", None),
    ("listDeadLetters", None),
    ("replayDeadLetters", Some(r#"{"ids": [1]}"#)),
    ("resumeSiemIntegration", None),
    ("deleteSiemIntegration", None),
    ("getSiemIntegration", None),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_true() {
    let f = fixture_tuned(
        "backlog_max_events = 50\n",
        true,
        |config: &mut evo_siem_sender::service::Config| {
            config.listener.body_timeout_ms = 300;
            config.spool.max_staleness_ms = 2_000;
        },
    )
    .await;
    let client = Client {
        f: &f,
        http: reqwest::Client::new(),
    };
    let doc_value: Value = serde_json::from_str(evo_siem_sender::api::admin::OPENAPI).unwrap();
    let mut doc = Doc::new(doc_value.clone());
    let operations = doc.operations();
    assert_eq!(operations.len(), 12);
    let ids: BTreeSet<&String> = operations.iter().map(|(id, _, _)| id).collect();
    assert_eq!(ids.len(), operations.len(), "operationIds are unique");

    // Served as it is.
    let served = client
        .call(&doc, "getOpenApi", As::Nobody, "acme", "", None)
        .await;
    assert_eq!(served.json(), doc_value);
    doc.check("getOpenApi", &served);
    let health = client
        .call(&doc, "getHealth", As::Nobody, "acme", "", None)
        .await;
    doc.check("getHealth", &health);
    for caller in [As::Platform, As::Nobody] {
        let answer = client.call(&doc, "getMetrics", caller, "", "", None).await;
        doc.check("getMetrics", &answer);
    }

    // Ingest: accepted, refused for each reason.
    let (_, one) = ingest_body(&["User logout"]);
    let fifty_one = ingest_body(&["User logout"; 51]).1;
    for (caller, tenant, body, expected) in [
        (As::Platform, "acme", one.as_str(), 202),
        (As::Nobody, "acme", one.as_str(), 401),
        (As::Platform, "nobody", one.as_str(), 404),
        (As::Platform, "acme", "{not json", 400),
        (As::Platform, "acme", "", 400),
        (As::Platform, "acme", fifty_one.as_str(), 503),
    ] {
        let answer = client
            .call(&doc, "ingestAuditEvents", caller, tenant, "", Some(body))
            .await;
        assert_eq!(answer.status, expected, "{:?}", answer.json());
        doc.check("ingestAuditEvents", &answer);
    }

    // The admin operations: as meant, then refused for each reason the caller can cause.
    let update = r#"{"excluded_actions": ["User login"]}"#;
    doc.check_request("putSiemIntegration", update);
    let calls: Vec<(&str, As, &str, Option<&str>, u16)> = vec![
        ("getSiemIntegration", As::Manager, "", None, 200),
        ("getSiemIntegration", As::Nobody, "", None, 401),
        ("getSiemIntegration", As::OtherTenant, "", None, 404),
        ("putSiemIntegration", As::Manager, "", Some(update), 200),
        ("putSiemIntegration", As::Viewer, "", Some(update), 403),
        ("putSiemIntegration", As::Nobody, "", Some(update), 401),
        ("putSiemIntegration", As::OtherTenant, "", Some(update), 404),
        (
            "putSiemIntegration",
            As::Manager,
            "",
            Some(r#"{"linger_ms": -1}"#),
            422,
        ),
        (
            "putSiemIntegration",
            As::Manager,
            "",
            Some("{not json"),
            400,
        ),
        ("testSiemIntegration", As::Manager, "", None, 200),
        ("testSiemIntegration", As::Viewer, "", None, 403),
        ("testSiemIntegration", As::Nobody, "", None, 401),
        ("testSiemIntegration", As::OtherTenant, "", None, 404),
        (
            "testSiemIntegration",
            As::Manager,
            "",
            Some(r#"{"secret": "next"}"#),
            400,
        ),
        ("getSiemIntegrationStatus", As::Viewer, "", None, 200),
        ("getSiemIntegrationStatus", As::Nobody, "", None, 401),
        ("getSiemIntegrationStatus", As::OtherTenant, "", None, 404),
        ("listDeadLetters", As::Viewer, "?limit=10", None, 200),
        ("listDeadLetters", As::Viewer, "?limit=0", None, 400),
        ("listDeadLetters", As::Nobody, "", None, 401),
        ("listDeadLetters", As::OtherTenant, "", None, 404),
        ("replayDeadLetters", As::Manager, "", None, 200),
        (
            "replayDeadLetters",
            As::Manager,
            "",
            Some(r#"{"ids": [1, 2]}"#),
            200,
        ),
        ("replayDeadLetters", As::Viewer, "", None, 403),
        ("replayDeadLetters", As::Nobody, "", None, 401),
        ("replayDeadLetters", As::OtherTenant, "", None, 404),
        (
            "replayDeadLetters",
            As::Manager,
            "",
            Some(r#"{"ids": "all"}"#),
            400,
        ),
        ("resumeSiemIntegration", As::Manager, "", None, 202),
        ("resumeSiemIntegration", As::Viewer, "", None, 403),
        ("resumeSiemIntegration", As::Nobody, "", None, 401),
        ("resumeSiemIntegration", As::OtherTenant, "", None, 404),
        ("deleteSiemIntegration", As::Viewer, "", None, 403),
        ("deleteSiemIntegration", As::Nobody, "", None, 401),
        ("deleteSiemIntegration", As::Manager, "", None, 204),
        ("deleteSiemIntegration", As::Manager, "", None, 404),
    ];
    for (id, caller, query, body, expected) in calls {
        let answer = client.call(&doc, id, caller, "acme", query, body).await;
        assert_eq!(
            answer.status,
            expected,
            "{id} as {caller:?} {query} {body:?}: {:?}",
            answer.json()
        );
        doc.check(id, &answer);
    }
    // Created again (201); 1,001 ids are too many (422); the sixth test of a minute is 429.
    let create = format!(r#"{{"webhook_url": "{}/webhook"}}"#, f.siem.uri());
    doc.check_request("putSiemIntegration", &create);
    let created = client
        .call(
            &doc,
            "putSiemIntegration",
            As::Manager,
            "acme",
            "",
            Some(&create),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.json());
    doc.check("putSiemIntegration", &created);
    let ids: Vec<u32> = (1..=1001).collect();
    let too_many = serde_json::json!({ "ids": ids }).to_string();
    let refused = client
        .call(
            &doc,
            "replayDeadLetters",
            As::Manager,
            "acme",
            "",
            Some(&too_many),
        )
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.json());
    doc.check("replayDeadLetters", &refused);
    let limited = loop {
        let answer = client
            .call(&doc, "testSiemIntegration", As::Manager, "acme", "", None)
            .await;
        doc.check("testSiemIntegration", &answer);
        if answer.status != 200 {
            break answer;
        }
    };
    assert_eq!(limited.status, 429, "{:?}", limited.json());

    // Framing: every route reads its body under a limit and a pace.
    for (id, _, _) in &operations {
        framing(&mut doc, &f, id).await;
    }
    // A tenant in the path that is not UTF-8.
    for id in ["ingestAuditEvents", "getSiemIntegration"] {
        let answer = client.call(&doc, id, As::Manager, "%FF", "", None).await;
        assert_eq!(answer.status, 400, "{id}: {:?}", answer.json());
        doc.check(id, &answer);
    }

    // The store and the spool fail: the admin operations answer 500, ingest and /metrics 503.
    let broken = [
        ("shared_integrations", "shared_integrations_away"),
        ("shared_test_runs", "shared_test_runs_away"),
        ("spool_backlogs", "spool_backlogs_away"),
        ("spool_dead_letters", "spool_dead_letters_away"),
    ];
    rename(&f, &broken).await;
    for (id, body) in ADMIN {
        let answer = client.call(&doc, id, As::Manager, "acme", "", body).await;
        assert_eq!(answer.status, 500, "{id}: {:?}", answer.json());
        doc.check(id, &answer);
    }
    let stored = client
        .call(
            &doc,
            "ingestAuditEvents",
            As::Platform,
            "acme",
            "",
            Some(&one),
        )
        .await;
    assert_eq!(stored.status, 503, "{:?}", stored.json());
    doc.check("ingestAuditEvents", &stored);
    let metrics = client
        .call(&doc, "getMetrics", As::Platform, "", "", None)
        .await;
    assert_eq!(metrics.status, 503, "{:?}", metrics.json());
    doc.check("getMetrics", &metrics);
    let back: Vec<(&str, &str)> = broken.iter().map(|(a, b)| (*b, *a)).collect();
    rename(&f, &back).await;

    // An instance that cannot refresh the shared state: every admin operation answers 503.
    rename(&f, &[("shared_version", "shared_version_away")]).await;
    let started = Instant::now();
    loop {
        let answer = client
            .call(&doc, "getSiemIntegration", As::Manager, "acme", "", None)
            .await;
        if answer.status == 503 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never stale");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (id, body) in ADMIN {
        let answer = client.call(&doc, id, As::Manager, "acme", "", body).await;
        assert_eq!(answer.status, 503, "{id}: {:?}", answer.json());
        doc.check(id, &answer);
    }
    rename(&f, &[("shared_version_away", "shared_version")]).await;

    // The router's own answers: each path's Allow is its documented methods.
    for (path, item) in doc_value["paths"].as_object().unwrap() {
        let mut documented: BTreeSet<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        if documented.contains("GET") {
            documented.insert("HEAD".into());
        }
        let url = format!("{}{}", f.base, path.replace("{tenant}", "acme"));
        let answer = client.http.patch(url).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 405, "PATCH {path}");
        let allow: BTreeSet<String> = answer.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .collect();
        assert_eq!(allow, documented, "{path}");
        let body: Value = answer.json().await.unwrap();
        doc.validate("/components/schemas/RouterError", &body)
            .unwrap_or_else(|e| panic!("PATCH {path}: {e}"));
    }
    let unknown = client
        .http
        .get(format!("{}/v1/nothing-here", f.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let body: Value = unknown.json().await.unwrap();
    doc.validate("/components/schemas/RouterError", &body)
        .unwrap_or_else(|e| panic!("GET /v1/nothing-here: {e}"));

    // Every documented status was answered, but those that cannot be produced.
    let exempt: BTreeSet<(String, u16)> = NOT_PRODUCED
        .iter()
        .map(|(id, status, _)| ((*id).to_owned(), *status))
        .collect();
    assert_eq!(doc.unanswered(), exempt, "documented, never answered");
    f.sender.shutdown().await;
}
