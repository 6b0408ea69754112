//! The sender under test: how the suite starts, restarts and stops one.
//!
//! The suite talks to a sender only through its public interface: a configuration file in the
//! sender's TOML format and the ingest API. [`InProcess`] runs the real sender in the suite's
//! process; [`ChildProcess`] runs a sender binary as a child, so that a restart is a real
//! `kill -9`. A deliberately broken sender (the suite's own tests have some) implements the same
//! trait.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Why a sender could not be started.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// A sender the suite can drive.
pub trait SenderUnderTest {
    /// Starts the sender with `config` (the sender's TOML configuration, `listen` set to port 0)
    /// and returns the address of its ingest API. Called again after [`kill`](Self::kill) with
    /// the same configuration: the data directory, and so the spool, are the same.
    fn start(
        &mut self,
        config: &toml::Table,
    ) -> impl Future<Output = Result<SocketAddr, StartError>>;

    /// Stops the sender as abruptly as the implementation can: `SIGKILL` for a child process.
    fn kill(&mut self) -> impl Future<Output = ()>;

    /// Stops the sender at the end of a case.
    fn stop(&mut self) -> impl Future<Output = ()>;
}

/// The real sender ([`evo_siem_sender::service::Sender`]) in this process. A restart is a
/// graceful shutdown and a new start on the same data directory.
#[derive(Debug, Default)]
pub struct InProcess {
    sender: Option<evo_siem_sender::service::Sender>,
}

impl SenderUnderTest for InProcess {
    async fn start(&mut self, config: &toml::Table) -> Result<SocketAddr, StartError> {
        let config: evo_siem_sender::service::Config = toml::Table::try_into(config.clone())?;
        let sender = evo_siem_sender::service::Sender::start(&config).await?;
        let addr = sender.addr();
        self.sender = Some(sender);
        Ok(addr)
    }

    async fn kill(&mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        if let Some(sender) = self.sender.take() {
            sender.shutdown().await;
        }
    }
}

/// A sender binary (`evo-siem sender --config FILE`) run as a child process.
#[derive(Debug)]
pub struct ChildProcess {
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Option<tokio::process::Child>,
}

impl ChildProcess {
    /// Runs `bin` (an `evo-siem` binary) for each start.
    pub fn new(bin: impl Into<PathBuf>) -> std::io::Result<Self> {
        Ok(Self {
            bin: bin.into(),
            dir: tempfile::tempdir()?,
            child: None,
        })
    }
}

/// A free port on loopback. Another process could take it before the sender binds it; on a test
/// machine that is rare, and the start then fails loudly instead of testing the wrong thing.
fn free_port() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

impl SenderUnderTest for ChildProcess {
    async fn start(&mut self, config: &toml::Table) -> Result<SocketAddr, StartError> {
        let addr = free_port()?;
        let mut config = config.clone();
        config.insert("listen".into(), addr.to_string().into());
        let path = self.dir.path().join("sender.toml");
        std::fs::write(&path, toml::to_string(&config)?)?;
        let child = tokio::process::Command::new(&self.bin)
            .arg("sender")
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "error")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(addr);
            }
            if let Some(child) = &mut self.child
                && let Some(status) = child.try_wait()?
            {
                return Err(format!("the sender exited at start: {status}").into());
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Err("the sender did not listen within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    async fn stop(&mut self) {
        self.kill().await;
    }
}
