//! The syslog output against a real rsyslog (Debian's, started privately by
//! `scripts/rsyslog.sh`; the tests are skipped, saying so, where it cannot run), and over TLS
//! against a rustls listener with a certificate of a CA made for the test.

use crate::common::{deliver, event, events, metric, metrics_text, relay_from_toml, uuid};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// A private rsyslogd on a free port, stopped on drop.
pub(crate) struct Rsyslog {
    pub(crate) port: u16,
    pub(crate) dir: PathBuf,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/rsyslog.sh")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Rsyslog {
    /// Starts one, or `None` (with a SKIP line on stderr) where rsyslog cannot be had.
    pub(crate) fn start(dir: &Path) -> Option<Self> {
        let rsyslog = Self {
            port: free_port(),
            dir: dir.join("rsyslog"),
        };
        rsyslog.run("start").then_some(rsyslog)
    }

    /// Starts one whose input speaks TLS with this certificate chain (PEM), or `None`.
    pub(crate) fn start_tls(dir: &Path, ca: &str, cert: &str, key: &str) -> Option<Self> {
        let rsyslog = Self {
            port: free_port(),
            dir: dir.join("rsyslog-tls"),
        };
        let tls = rsyslog.dir.join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        for (name, pem) in [("ca.pem", ca), ("cert.pem", cert), ("key.pem", key)] {
            std::fs::write(tls.join(name), pem).unwrap();
        }
        rsyslog.run("start tls").then_some(rsyslog)
    }

    fn run(&self, action: &str) -> bool {
        let mut words = action.split(' ');
        let verb = words.next().unwrap();
        let output = Command::new("bash")
            .arg(script())
            .args([verb, &self.port.to_string()])
            .arg(&self.dir)
            .args(words)
            .output()
            .expect("bash runs");
        match output.status.code() {
            Some(0) => true,
            Some(3) => {
                eprintln!(
                    "SKIP: rsyslog is not available here: {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                false
            }
            _ => panic!(
                "scripts/rsyslog.sh {action} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    pub(crate) fn stop(&self) {
        assert!(self.run("stop"));
    }

    pub(crate) fn restart(&self) {
        assert!(self.run("start"));
    }

    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The messages rsyslog wrote so far.
    pub(crate) fn received(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("received.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until rsyslog wrote at least `n` messages (10 s at most), and returns them.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<String> {
        let began = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= n || began.elapsed() > Duration::from_secs(10) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", &self.port.to_string()])
            .arg(&self.dir)
            .output();
    }
}

/// The JSON after the RFC 5424 header `<PRI>1 TS HOST APP PROCID MSGID -`.
fn message_json(line: &str) -> &str {
    line.splitn(8, ' ').nth(7).unwrap()
}

fn syslog_output(address: &str, extra: &str) -> String {
    format!(
        "[[output]]\ntype = \"syslog\"\naddress = \"{address}\"\nhostname = \"relay-test\"\ntimeout_ms = 2000\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_receives_one_rfc5424_message_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rsyslog) = Rsyslog::start(dir.path()) else {
        return;
    };
    let (relay, _) = relay_from_toml(dir.path(), &syslog_output(&rsyslog.address(), ""), &[]).await;
    let batch = vec![
        event(&uuid(), "User login", "Success"),
        event(&uuid(), "User login", "Failure"),
        event(&uuid(), "Role changed", "Success"),
    ];
    assert_eq!(deliver(&relay.webhook_url(), &batch).await.0, 200);
    let received = rsyslog.wait_for(3).await;
    assert_eq!(received.len(), 3, "{received:?}");
    let pid = std::process::id();
    for (line, (event, pri)) in received.iter().zip(batch.iter().zip([134, 133, 134])) {
        let header =
            format!("<{pri}>1 2024-01-23T08:53:20.123456Z relay-test evo-siem {pid} create - ");
        assert!(
            line.starts_with(&header),
            "{line}\n does not start with\n{header}"
        );
        assert_eq!(
            message_json(line),
            event,
            "the event's JSON exactly as received"
        );
    }
    let text = metrics_text(&relay).await;
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_events_forwarded_total{output=\"syslog\"}"
        ),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rsyslog_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(rsyslog) = Rsyslog::start(dir.path()) else {
        return;
    };
    let (relay, _) = relay_from_toml(
        dir.path(),
        &format!(
            "request_timeout_ms = 3000\n{}",
            syslog_output(&rsyslog.address(), "")
        ),
        &[],
    )
    .await;
    let first = events(3);
    assert_eq!(deliver(&relay.webhook_url(), &first).await.0, 200);
    assert_eq!(rsyslog.wait_for(3).await.len(), 3);

    // The collector goes away: the relay's kept connection is closed under it. The next
    // delivery must not be acknowledged into that dead connection.
    rsyslog.stop();
    let second = events(2);
    let (status, answer) = deliver(&relay.webhook_url(), &second).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("syslog (connect)"), "{answer}");

    rsyslog.restart();
    let (status, answer) = deliver(&relay.webhook_url(), &second).await;
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"accepted":2,"duplicates":0}"#)
    );
    let received = rsyslog.wait_for(5).await;
    let jsons: Vec<&str> = received.iter().map(|l| message_json(l)).collect();
    let expected: Vec<&str> = first.iter().chain(&second).map(String::as_str).collect();
    assert_eq!(jsons, expected);

    // And once more on the new connection.
    let third = events(1);
    assert_eq!(deliver(&relay.webhook_url(), &third).await.0, 200);
    assert_eq!(rsyslog.wait_for(6).await.len(), 6);
}

/// A CA made for the test and a certificate it signed for `syslog.test`: the CA's PEM, the
/// certificate, and its key.
struct TestPki {
    ca_pem: String,
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["syslog.test".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    TestPki {
        ca_pem: ca.pem(),
        cert,
        key,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_over_tls_receives_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki();
    let Some(rsyslog) = Rsyslog::start_tls(
        dir.path(),
        &pki.ca_pem,
        &pki.cert.pem(),
        &pki.key.serialize_pem(),
    ) else {
        return;
    };
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let tls = format!(
        "tls = true\nca_file = \"{}\"\nserver_name = \"syslog.test\"\n",
        ca_file.display()
    );
    let (relay, _) =
        relay_from_toml(dir.path(), &syslog_output(&rsyslog.address(), &tls), &[]).await;
    let batch = events(3);
    let (status, answer) = deliver(&relay.webhook_url(), &batch).await;
    assert_eq!(status, 200, "{answer}");
    let received = rsyslog.wait_for(3).await;
    let jsons: Vec<&str> = received.iter().map(|l| message_json(l)).collect();
    assert_eq!(jsons, batch.iter().map(String::as_str).collect::<Vec<_>>());
}

/// A syslog-over-TLS listener: octet-counted frames, recorded.
async fn tls_listener(dir: &Path) -> (String, PathBuf, Arc<Mutex<Vec<String>>>) {
    let TestPki {
        ca_pem,
        cert: leaf,
        key: leaf_key,
    } = test_pki();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, sink) = (acceptor.clone(), Arc::clone(&sink));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = tls.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    // Octet counting: `LEN SP MSG`, repeated.
                    while let Some(space) = buffer.iter().position(|b| *b == b' ') {
                        let len: usize = std::str::from_utf8(&buffer[..space])
                            .unwrap()
                            .parse()
                            .unwrap();
                        if buffer.len() < space + 1 + len {
                            break;
                        }
                        let message =
                            String::from_utf8(buffer[space + 1..space + 1 + len].to_vec()).unwrap();
                        sink.lock().unwrap().push(message);
                        buffer.drain(..space + 1 + len);
                    }
                }
            });
        }
    });
    (address, ca_file, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (address, ca_file, received) = tls_listener(dir.path()).await;
    let tls = format!(
        "tls = true\nca_file = \"{}\"\nserver_name = \"syslog.test\"\nfacility = \"audit\"\napp_name = \"evo\"\n",
        ca_file.display()
    );
    let (relay, _) = relay_from_toml(dir.path(), &syslog_output(&address, &tls), &[]).await;
    let batch = events(2);
    assert_eq!(deliver(&relay.webhook_url(), &batch).await.0, 200);
    // Acknowledged means written and flushed through TLS: the listener has them (or is
    // decrypting them this instant).
    let began = Instant::now();
    while received.lock().unwrap().len() < 2 && began.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let messages = received.lock().unwrap().clone();
    assert_eq!(messages.len(), 2);
    for (message, event) in messages.iter().zip(&batch) {
        // audit (13) * 8 + info (6).
        assert!(
            message.starts_with("<110>1 2024-01-23T08:53:20.123456Z relay-test evo "),
            "{message}"
        );
        assert_eq!(message_json(message), event);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tls_refuses_a_certificate_it_cannot_trust() {
    let dir = tempfile::tempdir().unwrap();
    let (address, _, received) = tls_listener(dir.path()).await;
    // No ca_file: only the system's roots, which do not know the test's CA.
    let tls = "tls = true\nserver_name = \"syslog.test\"\n";
    let (relay, _) = relay_from_toml(dir.path(), &syslog_output(&address, tls), &[]).await;
    let (status, answer) = deliver(&relay.webhook_url(), &events(1)).await;
    assert_eq!(status, 503);
    assert!(answer.contains("syslog (tls)"), "{answer}");
    assert!(received.lock().unwrap().is_empty());
    let text = metrics_text(&relay).await;
    assert_eq!(
        metric(
            &text,
            "evo_siem_relay_output_failures_total{output=\"syslog\",kind=\"tls\"}"
        ),
        1.0
    );
}
