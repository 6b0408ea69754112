//! Faithful fakes of the two HTTP intakes, after their documented request and response
//! formats.
//!
//! Splunk HEC: `POST /services/collector/event`, `Authorization: Splunk <token>`, a body of
//! concatenated JSON objects each with an `event`; answers `{"text":"Success","code":0}`, or
//! 401 `{"text":"Token is required","code":2}`, 401 `{"text":"Invalid authorization","code":3}`,
//! 403 `{"text":"Invalid token","code":4}`, 400 `{"text":"No data","code":5}`,
//! 400 `{"text":"Invalid data format","code":6,"invalid-event-number":N}`,
//! 400 `{"text":"Incorrect index","code":7,"invalid-event-number":N}`,
//! 400 `{"text":"Event field is required","code":12,"invalid-event-number":N}`,
//! 503 `{"text":"Server is busy","code":9}`. A request with an invalid event indexes nothing.
//!
//! Elasticsearch: `POST /_bulk`, `Content-Type: application/x-ndjson`, action and source lines;
//! answers 200 `{"took":..,"errors":..,"items":[{"create":{"_index","_id","status",...}}]}`
//! with per-item 201 (`result: created`), 409 `version_conflict_engine_exception`, 400
//! `mapper_parsing_exception`, 429 `es_rejected_execution_exception`; 401 with a
//! `security_exception` for bad credentials; whole-request 503 when told to be down.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn json_response(status: u16, body: &Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// What the fake HEC saw and how it behaves.
#[derive(Debug, Default)]
pub(crate) struct HecState {
    pub(crate) token: String,
    /// Answer 503 code 9 to this many requests first.
    pub(crate) busy_first: usize,
    /// Answer 503 code 9 to every request.
    pub(crate) busy_always: bool,
    /// Indexes that exist (`None`: any).
    pub(crate) indexes: Option<Vec<String>>,
    /// Every request: its headers of interest and its number of objects.
    pub(crate) requests: Vec<(BTreeMap<String, String>, usize)>,
    /// The event objects indexed, in order.
    pub(crate) indexed: Vec<Value>,
}

/// A fake Splunk HEC on a free port; an event whose `data.action` is `POISON` is "invalid data".
pub(crate) async fn hec(state: HecState) -> (String, Arc<Mutex<HecState>>) {
    let state = Arc::new(Mutex::new(state));
    let router = Router::new()
        .route("/services/collector/event", post(hec_event))
        .with_state(Arc::clone(&state));
    (format!("http://{}", serve(router).await), state)
}

async fn hec_event(
    State(state): State<Arc<Mutex<HecState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap();
    let seen: BTreeMap<String, String> =
        ["authorization", "content-type", "x-splunk-request-channel"]
            .iter()
            .filter_map(|h| Some(((*h).to_owned(), headers.get(*h)?.to_str().ok()?.to_owned())))
            .collect();
    let objects: Vec<Result<Value, _>> = serde_json::Deserializer::from_slice(&body)
        .into_iter::<Value>()
        .collect();
    state.requests.push((seen, objects.len()));
    let Some(authorization) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return json_response(401, &json!({"text": "Token is required", "code": 2}));
    };
    let Some(token) = authorization.strip_prefix("Splunk ") else {
        return json_response(401, &json!({"text": "Invalid authorization", "code": 3}));
    };
    if token != state.token {
        return json_response(403, &json!({"text": "Invalid token", "code": 4}));
    }
    if state.busy_always || state.busy_first > 0 {
        state.busy_first = state.busy_first.saturating_sub(1);
        return json_response(503, &json!({"text": "Server is busy", "code": 9}));
    }
    if objects.is_empty() {
        return json_response(400, &json!({"text": "No data", "code": 5}));
    }
    let mut valid = Vec::new();
    for (n, object) in objects.into_iter().enumerate() {
        let Ok(object) = object else {
            return json_response(
                400,
                &json!({"text": "Invalid data format", "code": 6, "invalid-event-number": n}),
            );
        };
        let Some(event) = object.get("event") else {
            return json_response(
                400,
                &json!({"text": "Event field is required", "code": 12, "invalid-event-number": n}),
            );
        };
        if event["data"]["action"] == "POISON" {
            return json_response(
                400,
                &json!({"text": "Invalid data format", "code": 6, "invalid-event-number": n}),
            );
        }
        if let (Some(indexes), Some(index)) = (&state.indexes, object.get("index"))
            && !indexes.iter().any(|i| index == i)
        {
            return json_response(
                400,
                &json!({"text": "Incorrect index", "code": 7, "invalid-event-number": n}),
            );
        }
        valid.push(object);
    }
    state.indexed.extend(valid);
    json_response(200, &json!({"text": "Success", "code": 0}))
}

/// What the fake Elasticsearch holds and how it behaves.
#[derive(Debug, Default)]
pub(crate) struct EsState {
    /// The `Authorization` header expected.
    pub(crate) authorization: String,
    /// Answer 503 to every request.
    pub(crate) down: bool,
    /// Items with these ids are answered 429 the first time they are seen.
    pub(crate) busy_once: HashSet<String>,
    /// Documents by (index, id).
    pub(crate) documents: BTreeMap<(String, String), Value>,
    /// Items in each request, in order.
    pub(crate) requests: Vec<usize>,
    /// Content types received.
    pub(crate) content_types: Vec<String>,
}

/// A fake Elasticsearch on a free port; a document whose `data.action` is `MAPPING-CONFLICT`
/// fails to map (400).
pub(crate) async fn elasticsearch(state: EsState) -> (String, Arc<Mutex<EsState>>) {
    let state = Arc::new(Mutex::new(state));
    let router = Router::new()
        .route("/_bulk", post(bulk))
        .with_state(Arc::clone(&state));
    (format!("http://{}", serve(router).await), state)
}

async fn bulk(
    State(state): State<Arc<Mutex<EsState>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap();
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == state.authorization);
    if !authorized {
        return json_response(
            401,
            &json!({"error": {"root_cause": [{"type": "security_exception", "reason": "unable to authenticate"}],
                    "type": "security_exception", "reason": "unable to authenticate"}, "status": 401}),
        );
    }
    if state.down {
        return json_response(
            503,
            &json!({"error": {"type": "cluster_block_exception", "reason": "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];"}, "status": 503}),
        );
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    state.content_types.push(content_type);
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.ends_with('\n'), "a bulk body ends with a newline");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() % 2, 0, "action and source lines in pairs");
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let action: Value = serde_json::from_str(pair[0]).unwrap();
        let create = &action["create"];
        let index = create["_index"].as_str().unwrap().to_owned();
        let id = create["_id"].as_str().unwrap().to_owned();
        let source: Value = serde_json::from_str(pair[1]).unwrap();
        let key = (index.clone(), id.clone());
        let item = if state.busy_once.remove(&id) {
            json!({"_index": index, "_id": id, "status": 429,
                   "error": {"type": "es_rejected_execution_exception",
                             "reason": "rejected execution of coordinating operation"}})
        } else if source["data"]["action"] == "MAPPING-CONFLICT" {
            json!({"_index": index, "_id": id, "status": 400,
                   "error": {"type": "mapper_parsing_exception",
                             "reason": "failed to parse field [data.action] of type [long]"}})
        } else {
            match state.documents.entry(key) {
                std::collections::btree_map::Entry::Occupied(_) => {
                    json!({"_index": index, "_id": id, "status": 409,
                           "error": {"type": "version_conflict_engine_exception",
                                     "reason": format!("[{id}]: version conflict, document already exists (current version [1])")}})
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(source);
                    json!({"_index": index, "_id": id, "_version": 1, "result": "created",
                           "_shards": {"total": 2, "successful": 1, "failed": 0},
                           "_seq_no": 0, "_primary_term": 1, "status": 201})
                }
            }
        };
        errors |= item["status"] != 201;
        items.push(json!({ "create": item }));
    }
    state.requests.push(items.len());
    json_response(200, &json!({"took": 3, "errors": errors, "items": items}))
}
