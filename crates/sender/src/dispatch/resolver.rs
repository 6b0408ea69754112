//! [`GuardedResolver`]: DNS resolution that only ever returns addresses the guard accepts.
//!
//! reqwest connects to exactly the addresses its resolver returns, so filtering here means the
//! address checked is the address connected to: an answer that changes between a check and the
//! connection (DNS rebinding) cannot reach an internal address.

use crate::guard::check_ip;
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

/// Looks a host name up; the system resolver by default, a fake one in tests.
pub type Lookup = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>
        + Send
        + Sync,
>;

/// A resolver that drops every address in a blocked class and fails when none is left.
#[derive(Clone)]
pub struct GuardedResolver {
    allowed: Arc<[IpNet]>,
    lookup: Lookup,
}

impl std::fmt::Debug for GuardedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedResolver")
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

/// No address of the host may be contacted.
#[derive(Debug, thiserror::Error)]
#[error("every address of {host} is blocked by the outbound guard ({reason})")]
pub struct AllBlocked {
    host: String,
    reason: String,
}

/// The host name did not resolve: the lookup's own error, typed, so that a failure is
/// classified as DNS by its type rather than by the words of a message.
#[derive(Debug, thiserror::Error)]
#[error("{host} did not resolve")]
pub struct LookupFailed {
    host: String,
    #[source]
    source: std::io::Error,
}

impl GuardedResolver {
    /// Resolves with the system resolver (getaddrinfo on tokio's blocking pool).
    pub fn new(allowed: Arc<[IpNet]>) -> Self {
        let lookup: Lookup = Arc::new(|host: String| {
            Box::pin(async move {
                let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
                Ok(addrs.map(|a| a.ip()).collect())
            })
        });
        Self { allowed, lookup }
    }

    /// Resolves with `lookup` instead (tests use it to play a rebinding DNS server).
    pub fn with_lookup(allowed: Arc<[IpNet]>, lookup: Lookup) -> Self {
        Self { allowed, lookup }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let (allowed, lookup) = (self.allowed.clone(), self.lookup.clone());
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let answers = match lookup(host.clone()).await {
                Ok(answers) => answers,
                Err(source) => {
                    return Err(Box::new(LookupFailed { host, source })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            };
            let mut reason = String::from("no address");
            let kept: Vec<SocketAddr> = answers
                .into_iter()
                .filter(|ip| match check_ip(*ip, &allowed) {
                    Ok(()) => true,
                    Err(blocked) => {
                        reason = blocked.to_string();
                        false
                    }
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            if kept.is_empty() {
                return Err(Box::new(AllBlocked { host, reason })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}
