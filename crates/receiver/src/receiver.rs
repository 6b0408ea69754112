//! [`Receiver`]: configuration plus the framework-free entry point, [`Receiver::accept`].

use crate::dedup::{ClaimToken, DedupStore, MemoryDedup};
use crate::verified::{Claims, Indexed, VerifiedBatch};
use crate::{REJECTION_TARGET, Rejection};
use bytes::Bytes;
use evo_siem_protocol::standard_webhooks::WhsecError;
use evo_siem_protocol::{EventIds, Secret, SignatureHeaders, SignatureScheme, Verifier};
use http::{HeaderMap, HeaderName};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// Why a [`Receiver`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither a secret nor [`ReceiverBuilder::allow_unsigned`] was given.
    #[error(
        "no signing secret configured; add one, or call allow_unsigned() to accept unsigned batches on purpose"
    )]
    NoSecret,
    /// A configured secret is empty (an unset environment variable, most likely).
    #[error("a configured signing secret is empty")]
    EmptySecret,
    /// A secret given to [`ReceiverBuilder::whsec_secret`] is not `whsec_` and base64.
    #[error("a Standard Webhooks secret is invalid: {0}")]
    InvalidWhsec(#[from] WhsecError),
    /// [`ReceiverBuilder::schemes`] was given no scheme: every signed request would be refused.
    #[error("no signature scheme accepted; give evo, standard-webhooks or both")]
    NoScheme,
}

/// Builds a [`Receiver`]. Start from [`Receiver::builder`].
#[derive(Debug, Default)]
pub struct ReceiverBuilder {
    secrets: Vec<Secret>,
    invalid_whsec: Option<WhsecError>,
    schemes: Option<Vec<SignatureScheme>>,
    unsigned: bool,
    tolerance: Option<Duration>,
    max_body_bytes: Option<usize>,
    event_ids: EventIds,
    dedup: Option<Arc<dyn DedupStore>>,
}

impl ReceiverBuilder {
    /// Accepts batches signed with `secret`. Call it again to accept several secrets at once
    /// (rotation: add the new secret, switch the sender, then remove the old one).
    #[must_use]
    pub fn secret(mut self, secret: impl Into<Secret>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Accepts batches signed with a secret given in the Standard Webhooks form, `whsec_` and the
    /// base64 of the key bytes: the same key a Standard Webhooks library derives from that text,
    /// and the form the sender shows for an integration's secret. An invalid value makes
    /// [`build`](Self::build) fail with [`BuildError::InvalidWhsec`]. The key verifies either
    /// scheme: a secret is a secret, whatever its written form.
    #[must_use]
    pub fn whsec_secret(mut self, whsec: &str) -> Self {
        match Secret::from_whsec(whsec) {
            Ok(secret) => self.secrets.push(secret),
            Err(err) => {
                self.invalid_whsec.get_or_insert(err);
            }
        }
        self
    }

    /// Accepts only these signature schemes. Default: both, `X-Evo-Signature-256` and Standard
    /// Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`); a request signed both
    /// ways must verify both ways. A signature of a scheme left out is ignored, as if absent.
    #[must_use]
    pub fn schemes(mut self, schemes: impl IntoIterator<Item = SignatureScheme>) -> Self {
        self.schemes = Some(schemes.into_iter().collect());
        self
    }

    /// Accepts unsigned batches (an integration without a signing secret). Without a secret
    /// anyone who knows the URL can post events, so this must be asked for explicitly.
    #[must_use]
    pub fn allow_unsigned(mut self) -> Self {
        self.unsigned = true;
        self
    }

    /// Replay tolerance: refuse a batch whose `generated_at` is further than this from now, in
    /// either direction. Default: 5 minutes.
    #[must_use]
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = Some(tolerance);
        self
    }

    /// Largest body accepted, in bytes. Default: 4 MiB.
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = Some(limit);
        self
    }

    /// Which event ids (`data.uuid`) are accepted. Default: [`EventIds::Any`], any id of 1 to 128
    /// bytes of printable ASCII, as the platform writes them (the product page's example is
    /// `"evt-abc123"`); UUIDs deduplicate by their 16 bytes, other ids by a 128-bit hash of their
    /// exact text ([`evo_siem_protocol::event_key`]). [`EventIds::UuidOnly`] refuses every other
    /// id with 400 `invalid_event_uuid`.
    #[must_use]
    pub fn event_ids(mut self, policy: EventIds) -> Self {
        self.event_ids = policy;
        self
    }

    /// The deduplication store. Default: a [`MemoryDedup`] with default settings.
    #[must_use]
    pub fn dedup(mut self, store: impl DedupStore) -> Self {
        self.dedup = Some(Arc::new(store));
        self
    }

    /// The deduplication store, already shared: several receivers (or a receiver and the code
    /// that inspects the store) can hold the same one.
    #[must_use]
    pub fn dedup_shared(mut self, store: Arc<dyn DedupStore>) -> Self {
        self.dedup = Some(store);
        self
    }

    /// Builds the receiver, refusing a configuration that would accept forged batches by mistake.
    pub fn build(self) -> Result<Receiver, BuildError> {
        if let Some(err) = self.invalid_whsec {
            return Err(err.into());
        }
        if self.secrets.iter().any(Secret::is_empty) {
            return Err(BuildError::EmptySecret);
        }
        if self.schemes.as_ref().is_some_and(Vec::is_empty) {
            return Err(BuildError::NoScheme);
        }
        let mut verifier = match (self.secrets.is_empty(), self.unsigned) {
            (false, _) => Verifier::new(self.secrets),
            (true, true) => Verifier::unsigned(),
            (true, false) => return Err(BuildError::NoSecret),
        };
        if let Some(tolerance) = self.tolerance {
            verifier = verifier.tolerance(tolerance);
        }
        if let Some(limit) = self.max_body_bytes {
            verifier = verifier.max_body_bytes(limit);
        }
        if let Some(schemes) = self.schemes {
            verifier = verifier.schemes(schemes);
        }
        verifier = verifier.event_ids(self.event_ids);
        Ok(Receiver {
            inner: Arc::new(Inner {
                verifier,
                token_base: ClaimToken::random().0,
                next_token: AtomicU64::new(0),
                dedup: self
                    .dedup
                    .unwrap_or_else(|| Arc::new(MemoryDedup::default())),
            }),
        })
    }
}

/// Accepts Evo SIEM webhook deliveries: verifies, parses and deduplicates them.
///
/// Cheap to clone (one `Arc`); put it in your axum state and extract
/// [`VerifiedBatch`](crate::VerifiedBatch), or call [`accept`](Self::accept) from any framework.
#[derive(Debug, Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    verifier: Verifier,
    /// Claim tokens are this random base plus a counter: unique per delivery, also between
    /// receivers sharing a store, without asking the OS for randomness on every request.
    token_base: u128,
    next_token: AtomicU64,
    dedup: Arc<dyn DedupStore>,
}

impl Receiver {
    /// Starts a [`ReceiverBuilder`].
    pub fn builder() -> ReceiverBuilder {
        ReceiverBuilder::default()
    }

    /// The body size limit in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.inner.verifier.body_limit()
    }

    /// The deduplication store.
    pub fn dedup_store(&self) -> &Arc<dyn DedupStore> {
        &self.inner.dedup
    }

    /// Accepts one delivery: the request headers and the exact body bytes in; a verified batch
    /// holding claims on its fresh events, or a typed [`Rejection`], out.
    ///
    /// The signature is checked on the raw bytes before any parsing, in either scheme (see
    /// [`ReceiverBuilder::schemes`]): `X-Evo-Signature-256`, or the Standard Webhooks headers,
    /// whose `webhook-timestamp` must be within the replay window as `generated_at` must. `now` is the receiver's
    /// clock (pass `SystemTime::now()`; tests pass a fixed time). Process
    /// [`VerifiedBatch::events`] and then call [`VerifiedBatch::commit`]; answer 2xx only after
    /// the commit succeeded.
    pub async fn accept(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
    ) -> Result<VerifiedBatch, Rejection> {
        let result = self.accept_inner(headers, body, now).await;
        if let Err(rejection) = &result {
            tracing::debug!(
                target: REJECTION_TARGET,
                reason = rejection.reason_code(),
                status = rejection.status().as_u16(),
                "webhook delivery rejected: {rejection}"
            );
        }
        result
    }

    async fn accept_inner(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
    ) -> Result<VerifiedBatch, Rejection> {
        let bytes = |name: &HeaderName| headers.get(name).map(|v| v.as_bytes());
        let mut signatures = SignatureHeaders::default();
        signatures.evo_signature = bytes(&names::SIGNATURE_256);
        signatures.webhook_id = bytes(&names::WEBHOOK_ID);
        signatures.webhook_timestamp = bytes(&names::WEBHOOK_TIMESTAMP);
        signatures.webhook_signature = bytes(&names::WEBHOOK_SIGNATURE);
        let verifier = &self.inner.verifier;
        let indexed = Indexed::try_new(body, |body| {
            verifier.verify_indexed_with_headers(body, &signatures, now)
        })?;

        // The store reports a UUID repeated within the batch as seen after its first occurrence.
        let uuids = &indexed.borrow_dependent().uuids;
        let count = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
        let token = ClaimToken(self.inner.token_base.wrapping_add(u128::from(count)));
        let store = &self.inner.dedup;
        let outcomes = store.claim(uuids, token).await?;
        if outcomes.len() != uuids.len() {
            // A broken store: the outcomes cannot be matched to the UUIDs, so some events would
            // be skipped (or the wrong ones handed out) under a 2xx. Refuse, so that the sender
            // keeps the batch, and give back whatever this delivery may have claimed (a release
            // only touches claims held by this token).
            tracing::error!(
                asked = uuids.len(),
                answered = outcomes.len(),
                "the deduplication store answered for {} of {} event UUIDs; \
                 refusing the delivery with 503 (dedup_store_inconsistent): fix the DedupStore",
                outcomes.len(),
                uuids.len(),
            );
            store.release(uuids.to_vec(), token);
            return Err(Rejection::DedupInconsistent {
                asked: uuids.len(),
                answered: outcomes.len(),
            });
        }
        let batch = VerifiedBatch::new(
            indexed,
            Claims {
                store: Arc::clone(store),
                token,
                outcomes,
            },
            // A delivery signed with Standard Webhooks alone names itself in webhook-id.
            header_value(headers, &names::DELIVERY_ID)
                .or_else(|| header_value(headers, &names::WEBHOOK_ID))
                .and_then(|v| Uuid::try_parse(v).ok()),
            header_value(headers, &names::DELIVERY_ATTEMPT).and_then(|v| v.parse().ok()),
        );
        if batch.in_flight() {
            return Err(Rejection::InFlight); // Dropping `batch` releases what it claimed.
        }
        Ok(batch)
    }
}

fn header_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The headers a delivery is read from, as `HeaderName`s built at compile time: a lookup by
/// `&str` parses and checks the name on every call, about a tenth of a microsecond a request
/// for these six.
mod names {
    use evo_siem_protocol::headers;
    use http::HeaderName;

    pub(super) const SIGNATURE_256: HeaderName = HeaderName::from_static(headers::SIGNATURE_256);
    pub(super) const WEBHOOK_ID: HeaderName = HeaderName::from_static(headers::WEBHOOK_ID);
    pub(super) const WEBHOOK_TIMESTAMP: HeaderName =
        HeaderName::from_static(headers::WEBHOOK_TIMESTAMP);
    pub(super) const WEBHOOK_SIGNATURE: HeaderName =
        HeaderName::from_static(headers::WEBHOOK_SIGNATURE);
    pub(super) const DELIVERY_ID: HeaderName = HeaderName::from_static(headers::DELIVERY_ID);
    pub(super) const DELIVERY_ATTEMPT: HeaderName =
        HeaderName::from_static(headers::DELIVERY_ATTEMPT);
}
