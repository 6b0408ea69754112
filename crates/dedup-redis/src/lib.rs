//! A Redis deduplication store for the Evo SIEM receiver SDK, so that several receivers behind
//! a load balancer process each event once.
//!
//! It keeps the claim / commit / release protocol of [`DedupStore`]:
//!
//! - **claim** is atomic per UUID (`SET key claim:<token> NX PX <claim ttl>`), and a batch's UUIDs
//!   are claimed in one round trip (one Lua script for the whole batch). A UUID already seen is a
//!   duplicate; one claimed by another receiver is in flight (the SDK answers 503 and the sender
//!   retries);
//! - **commit** marks the UUIDs seen for the long TTL (`SET key seen PX <ttl>`);
//! - **release** deletes only claims this delivery still owns (compare-and-delete in a script),
//!   in the background, since it runs from `Drop`; a receiver killed between claim and commit
//!   never releases, and its claims expire after the claim TTL so that a redelivery is processed.
//!
//! Every call has a timeout. When Redis cannot be reached the store returns a [`DedupError`] and
//! the receiver answers 503, never 2xx without deduplication; the connection is re-established
//! by itself when Redis returns.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use evo_siem_dedup_redis::{RedisDedup, RedisDedupConfig};
//! use evo_siem_receiver::Receiver;
//! let dedup = RedisDedup::new(RedisDedupConfig::new("redis://127.0.0.1:6379/"))?;
//! let receiver = Receiver::builder().secret("whsec-...").dedup(dedup).build()?;
//! # Ok(()) }
//! ```
//!
//! Keys are `<prefix><uuid>` (default prefix `evo-siem:dedup:`), one per event, each with its own
//! expiry: Redis holds about 100 bytes per remembered event. A batch's keys go to one script, so
//! on a Redis Cluster give them one hash slot with a prefix such as `{evo-siem}:dedup:`.

use evo_siem_receiver::dedup::{ClaimOutcome, ClaimToken, DedupError, DedupFuture, DedupStore};
use redis::Script;
use redis::aio::ConnectionManager;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use uuid::Uuid;

/// Claims each key for the token unless it exists; returns per key 1 (claimed), 2 (seen, or
/// repeated in this batch), 3 (claimed by someone else).
const CLAIM: &str = r"
local mine = 'claim:' .. ARGV[1]
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, mine, 'NX', 'PX', ARGV[2]) then
    out[i] = 1
  else
    local held = redis.call('GET', key)
    if held == 'seen' or held == mine then out[i] = 2 else out[i] = 3 end
  end
end
return out
";

/// Marks each key seen for the long TTL.
const COMMIT: &str = r"
for _, key in ipairs(KEYS) do
  redis.call('SET', key, 'seen', 'PX', ARGV[1])
end
return #KEYS
";

/// Deletes each key that still holds this token's claim.
const RELEASE: &str = r"
local mine = 'claim:' .. ARGV[1]
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == mine then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
";

/// Where Redis is and how long things last. `Debug` shows the URL's scheme only: the URL may
/// carry a password.
#[derive(Clone)]
pub struct RedisDedupConfig {
    /// `redis://[:password@]host:port/db`, or `rediss://` for TLS (rustls; the server's
    /// certificate is checked against the machine's trust store, or [`ca_pem`](Self::ca_pem)).
    /// Put a password in the URL from the environment, not in a file.
    pub url: String,
    /// The CA certificate(s), PEM, that a `rediss://` server's certificate must chain to,
    /// instead of the machine's trust store (a private CA). Default: none.
    pub ca_pem: Option<Vec<u8>>,
    /// Prepended to every key. Default `evo-siem:dedup:`.
    pub prefix: String,
    /// How long a seen UUID is remembered. Keep it longer than the sender's retry horizon.
    /// Default: 24 hours.
    pub ttl: Duration,
    /// How long a claim holds without a commit or release. Default: 2 minutes.
    pub claim_ttl: Duration,
    /// Time for each call, connecting included. Default: 2 seconds.
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisDedupConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.url.split_once("://").map_or("?", |(scheme, _)| scheme);
        f.debug_struct("RedisDedupConfig")
            .field("url", &format_args!("{scheme}://<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<set>"))
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("claim_ttl", &self.claim_ttl)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisDedupConfig {
    /// The defaults, with Redis at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_pem: None,
            prefix: "evo-siem:dedup:".into(),
            ttl: Duration::from_secs(24 * 60 * 60),
            claim_ttl: Duration::from_secs(120),
            timeout: Duration::from_secs(2),
        }
    }

    /// Sets [`ca_pem`](Self::ca_pem).
    #[must_use]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Sets [`prefix`](Self::prefix).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`claim_ttl`](Self::claim_ttl).
    #[must_use]
    pub fn claim_ttl(mut self, claim_ttl: Duration) -> Self {
        self.claim_ttl = claim_ttl;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The Redis store. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct RedisDedup {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// Created at the first call that reaches Redis; it reconnects by itself after errors.
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    prefix: String,
    ttl_ms: u64,
    claim_ttl_ms: u64,
    timeout: Duration,
    scripts: OnceLock<(Script, Script, Script)>,
}

impl std::fmt::Debug for RedisDedup {
    // The URL may carry a password: it is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisDedup")
            .field("prefix", &self.inner.prefix)
            .field("ttl_ms", &self.inner.ttl_ms)
            .field("claim_ttl_ms", &self.inner.claim_ttl_ms)
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A Redis error as a [`DedupError`], without the URL (and so without a password).
fn unavailable(err: &redis::RedisError) -> DedupError {
    DedupError(format!(
        "redis: {:?}: {}",
        err.kind(),
        err.detail().unwrap_or("no detail")
    ))
}

impl RedisDedup {
    /// A store for `config`; it connects at the first call, so a receiver starts even while
    /// Redis is down (and answers 503 until it is up).
    pub fn new(config: RedisDedupConfig) -> Result<Self, DedupError> {
        // rustls needs a crypto provider; one installed already (by the application) stays.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let invalid =
            |e: redis::RedisError| DedupError(format!("invalid Redis URL: {:?}", e.kind()));
        let client = match &config.ca_pem {
            Some(ca) => redis::Client::build_with_tls(
                config.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(ca.clone()),
                },
            ),
            None => redis::Client::open(config.url.as_str()),
        }
        .map_err(invalid)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                connection: tokio::sync::Mutex::new(None),
                prefix: config.prefix,
                ttl_ms: millis(config.ttl),
                claim_ttl_ms: millis(config.claim_ttl),
                timeout: config.timeout,
                scripts: OnceLock::new(),
            }),
        })
    }

    fn keys(&self, uuids: &[Uuid]) -> Vec<String> {
        uuids
            .iter()
            .map(|u| format!("{}{}", self.inner.prefix, u.as_hyphenated()))
            .collect()
    }

    fn scripts(&self) -> &(Script, Script, Script) {
        self.inner.scripts.get_or_init(|| {
            (
                Script::new(CLAIM),
                Script::new(COMMIT),
                Script::new(RELEASE),
            )
        })
    }

    /// The connection, made now if there is none yet.
    async fn connection(&self) -> Result<ConnectionManager, DedupError> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let connection = tokio::time::timeout(
            self.inner.timeout,
            self.inner.client.get_connection_manager(),
        )
        .await
        .map_err(|_| DedupError("redis: no connection within the timeout".into()))?
        .map_err(|e| unavailable(&e))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `script` on `keys` with `args`, within the timeout.
    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, DedupError> {
        let mut connection = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        tokio::time::timeout(self.inner.timeout, invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| DedupError("redis: no answer within the timeout".into()))?
            .map_err(|e| unavailable(&e))
    }
}

fn token_arg(token: ClaimToken) -> String {
    format!("{:032x}", token.0)
}

impl DedupStore for RedisDedup {
    fn claim<'a>(
        &'a self,
        uuids: &'a [Uuid],
        token: ClaimToken,
    ) -> DedupFuture<'a, Vec<ClaimOutcome>> {
        Box::pin(async move {
            if uuids.is_empty() {
                return Ok(Vec::new());
            }
            let codes: Vec<u8> = self
                .run(
                    &self.scripts().0,
                    &self.keys(uuids),
                    &[token_arg(token), self.inner.claim_ttl_ms.to_string()],
                )
                .await?;
            if codes.len() != uuids.len() {
                return Err(DedupError(
                    "redis: the claim script answered for the wrong number of keys".into(),
                ));
            }
            Ok(codes
                .into_iter()
                .map(|code| match code {
                    1 => ClaimOutcome::Claimed,
                    2 => ClaimOutcome::Seen,
                    _ => ClaimOutcome::InFlight,
                })
                .collect())
        })
    }

    fn commit<'a>(&'a self, uuids: &'a [Uuid], _token: ClaimToken) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            if uuids.is_empty() {
                return Ok(());
            }
            let _: i64 = self
                .run(
                    &self.scripts().1,
                    &self.keys(uuids),
                    &[self.inner.ttl_ms.to_string()],
                )
                .await?;
            Ok(())
        })
    }

    fn release(&self, uuids: Vec<Uuid>, token: ClaimToken) {
        if uuids.is_empty() {
            return;
        }
        // Called from Drop: no waiting here. Without a runtime (or if the call fails) the claims
        // expire after the claim TTL.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.clone();
        runtime.spawn(async move {
            let keys = store.keys(&uuids);
            let result: Result<i64, DedupError> = store
                .run(&store.scripts().2, &keys, &[token_arg(token)])
                .await;
            if let Err(err) = result {
                tracing::warn!(error = %err, "claims not released; they expire after the claim TTL");
            }
        });
    }
}
