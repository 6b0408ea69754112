//! `type = "elasticsearch"`: the `_bulk` API of Elasticsearch or OpenSearch, one `create` per
//! event with the event's UUID as `_id`, so that a redelivered event is refused as a conflict
//! (409) instead of being indexed twice:
//!
//! ```text
//! POST /_bulk        Content-Type: application/x-ndjson
//! {"create":{"_index":"evo-audit","_id":"8f0c1a52-3b7e-4f0e-9c61-2d5e8a9b7c10"}}
//! {...the event...}
//! ```
//!
//! Each item of the answer is judged on its own:
//!
//! | item status | relay |
//! |---|---|
//! | 200, 201 | created |
//! | 409 (`version_conflict_engine_exception`) | already present: acknowledged |
//! | 400 (`mapper_parsing_exception`, `document_parsing_exception`, ...) | refused for good: dead-letter file |
//! | 429, 5xx | only those items are sent again, within the delivery's time budget; then failure `busy` |
//! | any other (401, 403, 404 `index_not_found_exception`, ...) | failure `http_status`: 503, the events wait in Evo's spool |
//!
//! The request as a whole: 401/403 are failure `auth`; 429 and 5xx are retried; 413 halves
//! the request; any other status is failure `http_status`.

use super::http::{call_error, call_timeout, check_url, chunks, client, endpoint, pause};
use super::{FailureKind, Output, OutputError, OutputFuture, Record, Refused, Sent};
use crate::config::{ConfigError, ElasticsearchConfig, EnvLookup, Format, secret_from};
use http::HeaderValue;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) fn check(config: &ElasticsearchConfig) -> Result<(), String> {
    check_url(&config.url)?;
    if config.index.is_empty()
        || config.index.starts_with(['_', '-', '+'])
        || config
            .index
            .contains([' ', '"', '*', ',', '/', '\\', '<', '>', '|', '?', '#'])
    {
        return Err(format!(
            "index {:?} is not a valid index name",
            config.index
        ));
    }
    let api_key = config.api_key_env.is_some() || config.api_key_file.is_some();
    let password = config.password_env.is_some() || config.password_file.is_some();
    if config.api_key_env.is_some() && config.api_key_file.is_some() {
        return Err("set api_key_env or api_key_file, not both".into());
    }
    if config.password_env.is_some() && config.password_file.is_some() {
        return Err("set password_env or password_file, not both".into());
    }
    if api_key && (config.username.is_some() || password) {
        return Err("use an API key or a username and password, not both".into());
    }
    if config.username.is_some() != password {
        return Err(
            "basic authentication needs both username and password_env (or password_file)".into(),
        );
    }
    if config.timeout_ms == 0 {
        return Err("timeout_ms must be greater than zero".into());
    }
    if config.max_request_bytes < 1024 {
        return Err("max_request_bytes must be at least 1024".into());
    }
    Ok(())
}

/// Indexes events into Elasticsearch or OpenSearch.
pub struct ElasticsearchOutput {
    name: String,
    format: Format,
    endpoint: reqwest::Url,
    index: String,
    authorization: Option<HeaderValue>,
    client: reqwest::Client,
    timeout: Duration,
    max_request_bytes: usize,
}

impl fmt::Debug for ElasticsearchOutput {
    /// Never the API key or the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElasticsearchOutput")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint.as_str())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Standard base64, for the Basic authorization header.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl ElasticsearchOutput {
    /// The output a `[[output]]` table describes, its credentials read through `env`.
    pub fn new(
        name: String,
        config: &ElasticsearchConfig,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Output {
            output: name.clone(),
            reason,
        };
        let base = check_url(&config.url).map_err(invalid)?;
        let api_key = secret_from(
            env,
            config.api_key_env.as_deref(),
            config.api_key_file.as_deref(),
            "the Elasticsearch API key",
        )?;
        let password = secret_from(
            env,
            config.password_env.as_deref(),
            config.password_file.as_deref(),
            "the Elasticsearch password",
        )?;
        let authorization = match (api_key, &config.username, password) {
            (Some(key), _, _) => Some(format!("ApiKey {}", key.expose())),
            (None, Some(user), Some(password)) => Some(format!(
                "Basic {}",
                base64(format!("{user}:{}", password.expose()).as_bytes())
            )),
            _ => None,
        };
        let authorization = authorization
            .map(|value| {
                let mut value = HeaderValue::try_from(value).map_err(|_| {
                    invalid("the credentials hold characters a header cannot carry".into())
                })?;
                value.set_sensitive(true);
                Ok::<_, ConfigError>(value)
            })
            .transpose()?;
        let mut endpoint = endpoint(&base, "/_bulk");
        if let Some(pipeline) = &config.pipeline {
            endpoint.query_pairs_mut().append_pair("pipeline", pipeline);
        }
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = client(config.ca_file.as_deref(), timeout).map_err(invalid)?;
        Ok(Self {
            name,
            format: config.format,
            endpoint,
            index: config.index.clone(),
            authorization,
            client,
            timeout,
            max_request_bytes: config.max_request_bytes,
        })
    }

    /// The two lines of one record.
    fn lines(&self, record: &Record<'_>) -> String {
        format!(
            "{{\"create\":{{\"_index\":{},\"_id\":\"{}\"}}}}\n{}\n",
            serde_json::Value::from(self.index.as_str()),
            record.uuid.as_hyphenated(),
            record.payload
        )
    }

    async fn post(&self, body: String, deadline: Instant) -> Result<(u16, String), OutputError> {
        let timeout = call_timeout(self.timeout, deadline).ok_or_else(OutputError::deadline)?;
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, "application/x-ndjson")
            .timeout(timeout)
            .body(body);
        if let Some(authorization) = &self.authorization {
            request = request.header(http::header::AUTHORIZATION, authorization.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| call_error(&e.without_url()))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| call_error(&e.without_url()))?;
        Ok((status, text))
    }
}

#[derive(Debug, Deserialize)]
struct BulkResponse<'a> {
    #[serde(borrow)]
    items: Vec<BTreeMap<&'a str, BulkItem<'a>>>,
}

#[derive(Debug, Deserialize)]
struct BulkItem<'a> {
    status: u16,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct ItemError {
    #[serde(rename = "type")]
    kind: Option<String>,
    reason: Option<String>,
}

/// `400 mapper_parsing_exception: failed to parse field [...]`.
fn describe(status: u16, error: Option<&RawValue>) -> String {
    let parsed: Option<ItemError> = error.and_then(|e| serde_json::from_str(e.get()).ok());
    match parsed {
        Some(ItemError { kind, reason }) => format!(
            "{status} {}: {}",
            kind.as_deref().unwrap_or("error"),
            reason.as_deref().unwrap_or("no reason given")
        ),
        None => match error {
            Some(raw) => format!("{status} {}", raw.get()),
            None => format!("{status}"),
        },
    }
}

/// What became of one request.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Per item, in request order.
    Items(Vec<ItemVerdict>),
    Bisect,
    Retry(OutputError),
    Fail(OutputError),
}

#[derive(Debug, PartialEq, Eq)]
enum ItemVerdict {
    Stored,
    Refused(String),
    Retry(String),
    Fail(String),
}

fn judge(status: u16, body: &str, sent: usize) -> Verdict {
    let excerpt = || body.chars().take(300).collect::<String>();
    match status {
        200 => {}
        401 | 403 => {
            return Verdict::Fail(OutputError::new(
                FailureKind::Auth,
                format!("HTTP {status}: {}", excerpt()),
            ));
        }
        413 if sent > 1 => return Verdict::Bisect,
        413 => {
            return Verdict::Items(vec![ItemVerdict::Refused(
                "413 the event is larger than the cluster accepts".into(),
            )]);
        }
        429 | 500..=599 => {
            return Verdict::Retry(OutputError::new(
                FailureKind::Busy,
                format!("HTTP {status}: {}", excerpt()),
            ));
        }
        _ => {
            return Verdict::Fail(OutputError::new(
                FailureKind::HttpStatus,
                format!("HTTP {status}: {}", excerpt()),
            ));
        }
    }
    let Ok(response) = serde_json::from_str::<BulkResponse<'_>>(body) else {
        return Verdict::Fail(OutputError::new(
            FailureKind::BadResponse,
            format!("not a bulk response: {}", excerpt()),
        ));
    };
    if response.items.len() != sent {
        return Verdict::Fail(OutputError::new(
            FailureKind::BadResponse,
            format!(
                "{} bulk items answered for {sent} sent",
                response.items.len()
            ),
        ));
    }
    Verdict::Items(
        response
            .items
            .iter()
            .map(|item| {
                let Some(item) = item.get("create").or_else(|| item.values().next()) else {
                    return ItemVerdict::Fail("an empty bulk item".into());
                };
                match item.status {
                    200 | 201 | 409 => ItemVerdict::Stored,
                    400 => ItemVerdict::Refused(describe(item.status, item.error)),
                    429 | 500..=599 => ItemVerdict::Retry(describe(item.status, item.error)),
                    _ => ItemVerdict::Fail(describe(item.status, item.error)),
                }
            })
            .collect(),
    )
}

impl Output for ElasticsearchOutput {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "elasticsearch"
    }

    fn format(&self) -> Format {
        self.format
    }

    fn send<'a>(&'a self, records: &'a [Record<'a>], deadline: Instant) -> OutputFuture<'a, Sent> {
        Box::pin(async move {
            let lines: Vec<String> = records.iter().map(|r| self.lines(r)).collect();
            let sizes: Vec<usize> = lines.iter().map(String::len).collect();
            let mut queue: VecDeque<Vec<usize>> = chunks(&sizes, self.max_request_bytes).into();
            let mut sent = Sent::default();
            let mut retries = 0;
            while let Some(group) = queue.pop_front() {
                let body: String = group.iter().map(|&i| lines[i].as_str()).collect();
                let verdict = match self.post(body, deadline).await {
                    Ok((status, text)) => judge(status, &text, group.len()),
                    Err(err) => Verdict::Retry(err),
                };
                let mut again = Vec::new();
                let mut last = None;
                match verdict {
                    Verdict::Items(items) => {
                        for (&i, item) in group.iter().zip(items) {
                            match item {
                                ItemVerdict::Stored => {}
                                ItemVerdict::Refused(reason) => {
                                    sent.refused.push(Refused { index: i, reason });
                                }
                                ItemVerdict::Retry(reason) => {
                                    again.push(i);
                                    last = Some(reason);
                                }
                                ItemVerdict::Fail(reason) => {
                                    return Err(OutputError::new(
                                        FailureKind::HttpStatus,
                                        format!("bulk item: {reason}"),
                                    ));
                                }
                            }
                        }
                    }
                    Verdict::Bisect => {
                        let (first, second) = group.split_at(group.len() / 2);
                        queue.push_front(second.to_vec());
                        queue.push_front(first.to_vec());
                        continue;
                    }
                    Verdict::Retry(err) => {
                        retries += 1;
                        if !pause(retries, deadline).await {
                            return Err(err);
                        }
                        queue.push_front(group);
                        continue;
                    }
                    Verdict::Fail(err) => return Err(err),
                }
                if let Some(reason) = last {
                    // Only the items that failed go again.
                    retries += 1;
                    if !pause(retries, deadline).await {
                        return Err(OutputError::new(
                            FailureKind::Busy,
                            format!("{} bulk items not stored in time: {reason}", again.len()),
                        ));
                    }
                    queue.push_front(again);
                } else {
                    retries = 0;
                }
            }
            sent.refused.sort_by_key(|r| r.index);
            Ok(sent)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn bulk_items_are_judged_one_by_one() {
        let body = r#"{"took":3,"errors":true,"items":[
            {"create":{"_index":"evo","_id":"a","status":201,"result":"created"}},
            {"create":{"_index":"evo","_id":"b","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[b]: version conflict, document already exists"}}},
            {"create":{"_index":"evo","_id":"c","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [data.ts]"}}},
            {"create":{"_index":"evo","_id":"d","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution"}}},
            {"create":{"_index":"evo","_id":"e","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}]}"#;
        let Verdict::Items(items) = judge(200, body, 5) else {
            panic!("not items")
        };
        assert_eq!(items[0], ItemVerdict::Stored);
        assert_eq!(items[1], ItemVerdict::Stored);
        assert_eq!(
            items[2],
            ItemVerdict::Refused(
                "400 mapper_parsing_exception: failed to parse field [data.ts]".into()
            )
        );
        assert!(matches!(items[3], ItemVerdict::Retry(_)));
        assert!(matches!(items[4], ItemVerdict::Retry(_)));
        assert!(matches!(
            judge(200, body, 4),
            Verdict::Fail(OutputError {
                kind: FailureKind::BadResponse,
                ..
            })
        ));
        assert!(matches!(
            judge(401, "{}", 1),
            Verdict::Fail(OutputError {
                kind: FailureKind::Auth,
                ..
            })
        ));
        assert!(matches!(judge(429, "{}", 1), Verdict::Retry(_)));
        assert_eq!(judge(413, "", 2), Verdict::Bisect);
        assert!(matches!(
            judge(404, "{}", 2),
            Verdict::Fail(OutputError {
                kind: FailureKind::HttpStatus,
                ..
            })
        ));
    }
}
