//! `type = "splunk_hec"`: Splunk's HTTP Event Collector, `POST /services/collector/event` with
//! `Authorization: Splunk <token>` and a body of concatenated event objects:
//!
//! ```json
//! {"time":1706000000.123,"sourcetype":"evo:siem:audit","event":{...}}{"time":...,"event":{...}}
//! ```
//!
//! `time` is the event's `data.ts` in seconds with milliseconds; `event` is the event's JSON as
//! received. A batch larger than `max_request_bytes` goes out in several requests.
//!
//! HEC's answers (`{"text":"...","code":N}`), and what the relay makes of them:
//!
//! | code | meaning | relay |
//! |---|---|---|
//! | 0 | success | acknowledged |
//! | 1, 2, 3, 4 | token disabled, required, invalid authorization, invalid token | failure `auth`: 503 to Evo, no retry in the request |
//! | 5, 6, 12, 13 | no data, invalid data format, event field required, event field blank | the event at `invalid-event-number` goes to the dead-letter file and the rest is sent again; without that number the request is halved until the event is found |
//! | 8, 9, 18, 19, 20 (or HTTP 429, 5xx) | internal error, server busy, unhealthy | retried within the delivery's time budget, then failure `busy` |
//! | any other (7 incorrect index, 10/11 channel, ...) | a configuration problem | failure `http_status`: 503, the events wait in Evo's spool until it is fixed |
//!
//! A 200 with code 0 means HEC accepted the events; with indexer acknowledgement enabled on
//! the token, it does not wait for indexing (the relay sends a channel id, so such tokens
//! accept its requests).

use super::http::{call_error, call_timeout, check_url, chunks, client, endpoint, pause};
use super::{FailureKind, Output, OutputError, OutputFuture, Record, Refused, Sent};
use crate::config::{ConfigError, EnvLookup, Format, SplunkHecConfig, secret_from};
use http::HeaderValue;
use serde::Deserialize;
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;

pub(crate) fn check(config: &SplunkHecConfig) -> Result<(), String> {
    check_url(&config.url)?;
    if config.token_env.is_some() == config.token_file.is_some() {
        return Err("set exactly one of token_env and token_file".into());
    }
    if config.timeout_ms == 0 {
        return Err("timeout_ms must be greater than zero".into());
    }
    if config.max_request_bytes < 1024 {
        return Err("max_request_bytes must be at least 1024".into());
    }
    Ok(())
}

/// Forwards events to a Splunk HTTP Event Collector.
pub struct SplunkHecOutput {
    name: String,
    format: Format,
    endpoint: reqwest::Url,
    authorization: HeaderValue,
    channel: String,
    client: reqwest::Client,
    /// `,"index":..,"sourcetype":..` and the like, ready to splice into each event object.
    metadata: String,
    timeout: Duration,
    max_request_bytes: usize,
}

impl fmt::Debug for SplunkHecOutput {
    /// Never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplunkHecOutput")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint.as_str())
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl SplunkHecOutput {
    /// The output a `[[output]]` table describes, its token read through `env`.
    pub fn new(
        name: String,
        config: &SplunkHecConfig,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Output {
            output: name.clone(),
            reason,
        };
        let base = check_url(&config.url).map_err(invalid)?;
        let token = secret_from(
            env,
            config.token_env.as_deref(),
            config.token_file.as_deref(),
            "the Splunk HEC token",
        )?
        .ok_or_else(|| invalid("no token".into()))?;
        let mut authorization = HeaderValue::try_from(format!("Splunk {}", token.expose()))
            .map_err(|_| invalid("the token holds characters a header cannot carry".into()))?;
        authorization.set_sensitive(true);
        let timeout = Duration::from_millis(config.timeout_ms);
        let mut metadata = String::new();
        let sourcetype = config.sourcetype.as_deref().unwrap_or(match config.format {
            Format::Raw => "evo:siem:audit",
            Format::Ocsf => "evo:siem:ocsf",
        });
        for (key, value) in [
            ("index", config.index.as_deref()),
            ("sourcetype", Some(sourcetype)),
            ("source", config.source.as_deref()),
            ("host", config.host.as_deref()),
        ] {
            if let Some(value) = value {
                metadata.push_str(&format!(",\"{key}\":{}", serde_json::Value::from(value)));
            }
        }
        let client = client(config.ca_file.as_deref(), timeout).map_err(invalid)?;
        Ok(Self {
            name,
            format: config.format,
            endpoint: endpoint(&base, "/services/collector/event"),
            authorization,
            channel: uuid::Uuid::new_v4().to_string(),
            client,
            metadata,
            timeout,
            max_request_bytes: config.max_request_bytes,
        })
    }

    /// The event object of one record.
    fn event_object(&self, record: &Record<'_>) -> String {
        let ts = record.event.data.ts;
        let (secs, millis) = (
            ts.div_euclid(1_000_000_000),
            ts.rem_euclid(1_000_000_000) / 1_000_000,
        );
        format!(
            r#"{{"time":{secs}.{millis:03}{},"event":{}}}"#,
            self.metadata, record.payload
        )
    }

    async fn post(&self, body: String, deadline: Instant) -> Result<HecAnswer, OutputError> {
        let timeout = call_timeout(self.timeout, deadline).ok_or_else(OutputError::deadline)?;
        let response = self
            .client
            .post(self.endpoint.clone())
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-splunk-request-channel", self.channel.as_str())
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| call_error(&e.without_url()))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|e| call_error(&e.without_url()))?;
        let reply: Option<HecReply> = serde_json::from_str(&text).ok();
        Ok(HecAnswer { status, reply })
    }
}

#[derive(Debug, Deserialize)]
struct HecReply {
    code: Option<i64>,
    text: Option<String>,
    #[serde(rename = "invalid-event-number")]
    invalid_event: Option<usize>,
}

#[derive(Debug)]
struct HecAnswer {
    status: u16,
    reply: Option<HecReply>,
}

/// What to do with one request's answer.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Done,
    /// This event (by position in the request) is refused for good; send the others again.
    Refuse(usize, String),
    /// Some event is refused for good, HEC did not say which: halve the request.
    Bisect(String),
    Retry(OutputError),
    Fail(OutputError),
}

fn judge(answer: &HecAnswer, sent: usize) -> Verdict {
    let code = answer.reply.as_ref().and_then(|r| r.code);
    let text = answer
        .reply
        .as_ref()
        .and_then(|r| r.text.clone())
        .unwrap_or_default();
    let described = format!(
        "HTTP {}, HEC code {}: {text}",
        answer.status,
        code.map_or("none".into(), |c| c.to_string())
    );
    match code {
        Some(0) if (200..300).contains(&answer.status) => Verdict::Done,
        Some(1..=4) => Verdict::Fail(OutputError::new(FailureKind::Auth, described)),
        Some(5 | 6 | 12 | 13) => match answer.reply.as_ref().and_then(|r| r.invalid_event) {
            Some(n) if n < sent => Verdict::Refuse(n, described),
            _ if sent == 1 => Verdict::Refuse(0, described),
            _ => Verdict::Bisect(described),
        },
        Some(8 | 9 | 18..=20) => Verdict::Retry(OutputError::new(FailureKind::Busy, described)),
        Some(_) => Verdict::Fail(OutputError::new(FailureKind::HttpStatus, described)),
        None => match answer.status {
            401 | 403 => Verdict::Fail(OutputError::new(FailureKind::Auth, described)),
            429 | 500..=599 => Verdict::Retry(OutputError::new(FailureKind::Busy, described)),
            200..=299 => Verdict::Fail(OutputError::new(
                FailureKind::BadResponse,
                format!("HTTP {} without a HEC status", answer.status),
            )),
            _ => Verdict::Fail(OutputError::new(FailureKind::HttpStatus, described)),
        },
    }
}

impl Output for SplunkHecOutput {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "splunk_hec"
    }

    fn format(&self) -> Format {
        self.format
    }

    fn send<'a>(&'a self, records: &'a [Record<'a>], deadline: Instant) -> OutputFuture<'a, Sent> {
        Box::pin(async move {
            let objects: Vec<String> = records.iter().map(|r| self.event_object(r)).collect();
            let sizes: Vec<usize> = objects.iter().map(String::len).collect();
            let mut queue: VecDeque<Vec<usize>> = chunks(&sizes, self.max_request_bytes).into();
            let mut sent = Sent::default();
            let mut retries = 0;
            while let Some(group) = queue.pop_front() {
                let body: String = group.iter().map(|&i| objects[i].as_str()).collect();
                let verdict = match self.post(body, deadline).await {
                    Ok(answer) => judge(&answer, group.len()),
                    Err(err) if err.kind == FailureKind::Auth => Verdict::Fail(err),
                    Err(err) => Verdict::Retry(err),
                };
                match verdict {
                    Verdict::Done => retries = 0,
                    Verdict::Refuse(n, reason) => {
                        sent.refused.push(Refused {
                            index: group[n],
                            reason,
                        });
                        let rest: Vec<usize> = group
                            .iter()
                            .enumerate()
                            .filter(|(k, _)| *k != n)
                            .map(|(_, &i)| i)
                            .collect();
                        if !rest.is_empty() {
                            queue.push_front(rest);
                        }
                    }
                    Verdict::Bisect(_) => {
                        let (first, second) = group.split_at(group.len() / 2);
                        queue.push_front(second.to_vec());
                        queue.push_front(first.to_vec());
                    }
                    Verdict::Retry(err) => {
                        retries += 1;
                        if !pause(retries, deadline).await {
                            return Err(err);
                        }
                        queue.push_front(group);
                    }
                    Verdict::Fail(err) => return Err(err),
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

    fn answer(status: u16, body: &str) -> HecAnswer {
        HecAnswer {
            status,
            reply: serde_json::from_str(body).ok(),
        }
    }

    #[test]
    fn hec_answers_are_judged_by_their_code() {
        assert_eq!(
            judge(&answer(200, r#"{"text":"Success","code":0}"#), 3),
            Verdict::Done
        );
        assert!(matches!(
            judge(&answer(403, r#"{"text":"Invalid token","code":4}"#), 3),
            Verdict::Fail(OutputError {
                kind: FailureKind::Auth,
                ..
            })
        ));
        assert!(matches!(
            judge(
                &answer(
                    400,
                    r#"{"text":"Invalid data format","code":6,"invalid-event-number":2}"#
                ),
                3
            ),
            Verdict::Refuse(2, _)
        ));
        assert!(matches!(
            judge(
                &answer(400, r#"{"text":"Invalid data format","code":6}"#),
                3
            ),
            Verdict::Bisect(_)
        ));
        assert!(matches!(
            judge(
                &answer(400, r#"{"text":"Invalid data format","code":6}"#),
                1
            ),
            Verdict::Refuse(0, _)
        ));
        assert!(matches!(
            judge(&answer(503, r#"{"text":"Server is busy","code":9}"#), 3),
            Verdict::Retry(OutputError {
                kind: FailureKind::Busy,
                ..
            })
        ));
        assert!(matches!(
            judge(
                &answer(
                    400,
                    r#"{"text":"Incorrect index","code":7,"invalid-event-number":1}"#
                ),
                3
            ),
            Verdict::Fail(OutputError {
                kind: FailureKind::HttpStatus,
                ..
            })
        ));
        assert!(matches!(
            judge(&answer(502, "<html>bad gateway</html>"), 3),
            Verdict::Retry(_)
        ));
        assert!(matches!(
            judge(&answer(200, "OK"), 3),
            Verdict::Fail(OutputError {
                kind: FailureKind::BadResponse,
                ..
            })
        ));
    }
}
