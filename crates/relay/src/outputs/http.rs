//! What the HTTP outputs (Splunk HEC, Elasticsearch) share: the client, URL checks, error
//! classification without secrets, and the retry pacing within a delivery's time budget.

use super::{FailureKind, OutputError};
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// Checks an output's base URL: http(s), a host, and no credentials, query or fragment (those
/// belong in the token settings, which are read from the environment).
pub(crate) fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("url: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("url: the scheme must be http or https".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("url: no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "url: no credentials in the URL; use the token or password settings, read from the environment"
                .into(),
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("url: no query or fragment".into());
    }
    Ok(parsed)
}

/// `base` with `suffix` (which starts with `/`) appended to its path.
pub(crate) fn endpoint(base: &reqwest::Url, suffix: &str) -> reqwest::Url {
    let mut url = base.clone();
    let path = format!("{}{suffix}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// The HTTP client: rustls with the platform's roots, plus the CAs of `ca_file`.
pub(crate) fn client(ca_file: Option<&Path>, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("evo-siem-relay/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("ca_file {}: no certificate", path.display()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| format!("HTTP client: {e}"))
}

/// A failed call as an [`OutputError`], without the URL.
pub(crate) fn call_error(err: &reqwest::Error) -> OutputError {
    let kind = if err.is_timeout() {
        FailureKind::Timeout
    } else if is_tls(err) {
        FailureKind::Tls
    } else if err.is_connect() {
        FailureKind::Connect
    } else {
        FailureKind::Io
    };
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    OutputError::new(kind, message)
}

fn is_tls(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The time left for one call: the output's timeout, or less when the delivery's deadline is
/// nearer; `None` once the deadline has passed.
pub(crate) fn call_timeout(timeout: Duration, deadline: Instant) -> Option<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    (!left.is_zero()).then(|| timeout.min(left))
}

/// Waits before retry number `retry` (1, 2, ...): 100 ms doubling up to 2 s, never past the
/// deadline. `false` when the deadline leaves no room for another attempt.
pub(crate) async fn pause(retry: u32, deadline: Instant) -> bool {
    let wait =
        Duration::from_millis(100u64 << retry.saturating_sub(1).min(5)).min(Duration::from_secs(2));
    if Instant::now() + wait >= deadline {
        return false;
    }
    tokio::time::sleep(wait).await;
    true
}

/// Splits `sizes` (the byte size of each record's lines) into consecutive groups of at most
/// `limit` bytes; a record larger than the limit alone forms a group.
pub(crate) fn chunks(sizes: &[usize], limit: usize) -> Vec<Vec<usize>> {
    let mut groups = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if !current.is_empty() && bytes + size > limit {
            groups.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(i);
        bytes += size;
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_without_secrets_only() {
        assert!(check_url("https://splunk.example.com:8088").is_ok());
        assert!(
            check_url("https://user:pw@es.example.com")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(check_url("https://es.example.com/?token=x").is_err());
        assert!(check_url("ftp://es.example.com").is_err());
        assert!(check_url("not a url").is_err());
    }

    #[test]
    fn endpoints_keep_a_base_path() {
        let base = check_url("https://proxy.example.com/es/").unwrap();
        assert_eq!(
            endpoint(&base, "/_bulk").as_str(),
            "https://proxy.example.com/es/_bulk"
        );
        let base = check_url("https://es.example.com:9200").unwrap();
        assert_eq!(
            endpoint(&base, "/_bulk").as_str(),
            "https://es.example.com:9200/_bulk"
        );
    }

    #[test]
    fn chunks_respect_the_limit() {
        assert_eq!(chunks(&[4, 4, 4, 4], 8), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(chunks(&[10, 1, 1], 8), vec![vec![0], vec![1, 2]]);
        assert_eq!(chunks(&[1, 1, 1], 100), vec![vec![0, 1, 2]]);
        assert!(chunks(&[], 8).is_empty());
    }
}
