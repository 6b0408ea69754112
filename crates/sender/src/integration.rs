//! [`Integration`]: one tenant's SIEM webhook settings, checked when built.

use crate::Exclusions;
use crate::batcher::BatchLimits;
use crate::guard::{self, Blocked};
use evo_siem_protocol::{Secret, SignatureScheme, headers::is_reserved};
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use url::Url;

/// Why an integration's settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrationError {
    /// The webhook URL is refused by the outbound guard.
    #[error("webhook_url: {0}")]
    Url(#[from] Blocked),
    /// A header may not be set by an integration (`Host`, `Content-Length`, `Content-Type`,
    /// `X-Evo-*`, and the hop-by-hop headers: see [`is_reserved`]).
    #[error(
        "headers: {0} is reserved (set by the sender, or a hop-by-hop header) and cannot be set"
    )]
    ReservedHeader(String),
    /// A header name or value is not valid HTTP (for example it holds CR or LF).
    #[error("headers: {0} is not a valid header")]
    InvalidHeader(String),
}

/// One tenant's SIEM integration: where to deliver, how to sign, what to exclude, how to batch.
///
/// `Debug` never shows the signing secret, header values, nor the URL's credentials and query
/// values ([`guard::redact_url`]).
#[derive(Clone)]
pub struct Integration {
    tenant: String,
    url: Url,
    secret: Option<Secret>,
    headers: HeaderMap,
    schemes: Vec<SignatureScheme>,
    exclusions: Exclusions,
    limits: BatchLimits,
}

impl std::fmt::Debug for Integration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Integration")
            .field("tenant", &self.tenant)
            .field("url", &guard::redact_url(&self.url))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("schemes", &self.schemes)
            .field("exclusions", &self.exclusions.len())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Integration {
    /// An integration delivering to `webhook_url`, which the outbound guard must accept (`allowed`
    /// is the sender's allow-list of private networks, for local testing).
    pub fn new(
        tenant: impl Into<String>,
        webhook_url: &str,
        allowed: &[IpNet],
    ) -> Result<Self, IntegrationError> {
        Ok(Self {
            tenant: tenant.into(),
            url: guard::check_url(webhook_url, allowed)?,
            secret: None,
            headers: HeaderMap::new(),
            schemes: vec![SignatureScheme::Evo],
            exclusions: Exclusions::default(),
            limits: BatchLimits::default(),
        })
    }

    /// Signs every delivery with `secret`.
    #[must_use]
    pub fn with_secret(mut self, secret: Secret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Sets how deliveries are signed (default: [`SignatureScheme::Evo`] alone). An empty list
    /// keeps the default; [`IntegrationSettings::check`](crate::settings::IntegrationSettings::check)
    /// refuses one before it gets here.
    #[must_use]
    pub fn with_schemes(mut self, schemes: Vec<SignatureScheme>) -> Self {
        if !schemes.is_empty() {
            self.schemes = schemes;
        }
        self
    }

    /// Adds an authorization header, sent verbatim; reserved names and invalid values are refused.
    pub fn with_header(mut self, name: &str, value: &str) -> Result<Self, IntegrationError> {
        if is_reserved(name) {
            return Err(IntegrationError::ReservedHeader(name.to_owned()));
        }
        let invalid = || IntegrationError::InvalidHeader(name.to_owned());
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let mut value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        value.set_sensitive(true);
        self.headers.append(name, value);
        Ok(self)
    }

    /// Sets the excluded audit actions.
    #[must_use]
    pub fn with_exclusions(mut self, exclusions: Exclusions) -> Self {
        self.exclusions = exclusions;
        self
    }

    /// Sets the batch limits.
    #[must_use]
    pub fn with_limits(mut self, limits: BatchLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The tenant this integration belongs to; also its key in the spool.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The webhook URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The signing secret, if any.
    pub fn secret(&self) -> Option<&Secret> {
        self.secret.as_ref()
    }

    /// The signature schemes deliveries carry, at least one.
    pub fn schemes(&self) -> &[SignatureScheme] {
        &self.schemes
    }

    /// Whether deliveries carry the signature headers of `scheme`.
    pub fn uses(&self, scheme: SignatureScheme) -> bool {
        self.schemes.contains(&scheme)
    }

    /// The integration's own headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The excluded audit actions.
    pub fn exclusions(&self) -> &Exclusions {
        &self.exclusions
    }

    /// The batch limits.
    pub fn limits(&self) -> &BatchLimits {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_cannot_override_reserved_ones_or_smuggle_lines() {
        let base = Integration::new("acme", "https://siem.example.com/evo", &[]).unwrap();
        for name in [
            "Host",
            "content-length",
            "Content-Type",
            "X-Evo-Signature-256",
            "x-evo-anything",
            "Connection",
            "Transfer-Encoding",
            "TE",
            "Upgrade",
            "Keep-Alive",
            "Trailer",
            "Proxy-Authorization",
            "proxy-connection",
        ] {
            assert_eq!(
                base.clone().with_header(name, "x").unwrap_err(),
                IntegrationError::ReservedHeader(name.to_owned())
            );
        }
        assert_eq!(
            base.clone()
                .with_header("Authorization", "Bearer a\r\nX-Evil: 1")
                .unwrap_err(),
            IntegrationError::InvalidHeader("Authorization".into())
        );
        assert_eq!(
            base.clone().with_header("Bad Name", "x").unwrap_err(),
            IntegrationError::InvalidHeader("Bad Name".into())
        );
        let ok = base
            .with_header("Authorization", "Splunk 0000")
            .unwrap()
            .with_secret(Secret::new("s3cr3t"));
        let debug = format!("{ok:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("Splunk 0000"),
            "{debug}"
        );
        let query =
            Integration::new("acme", "https://siem.example.com/evo?token=t0ken", &[]).unwrap();
        let debug = format!("{query:?}");
        assert!(
            !debug.contains("t0ken") && debug.contains("evo?token=***"),
            "{debug}"
        );
    }
}
