//! The sender under test: how the suite starts, restarts and stops one.
//!
//! The suite talks to a sender only through its public interface: a configuration file in the
//! sender's TOML format and the ingest API. [`InProcess`] runs the real sender in the suite's
//! process; [`ChildProcess`] runs a sender binary as a child, so that a restart is a real
//! `kill -9`. [`Cluster`] runs several sender binaries on one PostgreSQL spool, and a restart
//! kills one of them with `SIGKILL` while the others carry on. A deliberately broken sender (the suite's own tests have some) implements the same
//! trait.

use evo_siem_sender::spool::scratch::ScratchDatabase;
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

    /// Every ingest address, when the sender is several instances (the suite spreads its ingest
    /// requests over them); empty for one instance, whose address [`start`](Self::start)
    /// returned.
    fn ingest_addrs(&self) -> Vec<SocketAddr> {
        Vec::new()
    }
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

/// Starts `bin sender` with `config` (written to `path`, `listen` set to a free port) and waits
/// until it listens.
async fn spawn_sender(
    bin: &std::path::Path,
    path: &std::path::Path,
    config: &toml::Table,
) -> Result<(tokio::process::Child, SocketAddr), StartError> {
    let addr = free_port()?;
    let mut config = config.clone();
    config.insert("listen".into(), addr.to_string().into());
    std::fs::write(path, toml::to_string(&config)?)?;
    let mut child = tokio::process::Command::new(bin)
        .arg("sender")
        .arg("--config")
        .arg(path)
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok((child, addr));
        }
        if let Some(status) = child.try_wait()? {
            return Err(format!("the sender exited at start: {status}").into());
        }
        if started.elapsed() > Duration::from_secs(20) {
            return Err("the sender did not listen within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl SenderUnderTest for ChildProcess {
    async fn start(&mut self, config: &toml::Table) -> Result<SocketAddr, StartError> {
        let path = self.dir.path().join("sender.toml");
        let (child, addr) = spawn_sender(&self.bin, &path, config).await?;
        self.child = Some(child);
        Ok(addr)
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

/// Several sender binaries sharing one PostgreSQL spool, as behind a load balancer.
///
/// Each case gets a database of its own ([`ScratchDatabase`]), dropped at the end of the case.
/// Each instance has its own data directory (its integration store is seeded from the same
/// configuration) and the same `[spool]` table. A restart ([`kill`](SenderUnderTest::kill) then
/// [`start`](SenderUnderTest::start)) is a `SIGKILL` to one instance, in turn, and a new start
/// of it; the others keep delivering and take over its integrations when its leases expire.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    instances: usize,
    lease_ttl: Duration,
    dir: tempfile::TempDir,
    running: Vec<Option<(tokio::process::Child, SocketAddr)>>,
    database: Option<ScratchDatabase>,
    next_kill: usize,
}

impl Cluster {
    /// `instances` runs of `bin` (an `evo-siem` binary), whose leases last `lease_ttl`. The
    /// databases are created on the server of `EVO_SIEM_TEST_POSTGRES` (see [`ScratchDatabase`]).
    pub fn new(
        bin: impl Into<PathBuf>,
        instances: usize,
        lease_ttl: Duration,
    ) -> std::io::Result<Self> {
        Ok(Self {
            bin: bin.into(),
            instances: instances.max(1),
            lease_ttl,
            dir: tempfile::tempdir()?,
            running: Vec::new(),
            database: None,
            next_kill: 0,
        })
    }
}

impl SenderUnderTest for Cluster {
    async fn start(&mut self, config: &toml::Table) -> Result<SocketAddr, StartError> {
        if self.database.is_none() {
            self.database = Some(ScratchDatabase::create().await?);
        }
        let url_file = self.dir.path().join("spool-url");
        if let Some(database) = &self.database {
            std::fs::write(&url_file, database.url())?;
        }
        let data_dir = config
            .get("data_dir")
            .and_then(toml::Value::as_str)
            .unwrap_or("data")
            .to_owned();
        self.running.resize_with(self.instances, || None);
        for (i, slot) in self.running.iter_mut().enumerate() {
            if slot.is_some() {
                continue;
            }
            let mut config = config.clone();
            config.insert("data_dir".into(), format!("{data_dir}/instance-{i}").into());
            let mut spool = toml::Table::new();
            spool.insert("backend".into(), "postgres".into());
            spool.insert(
                "url_file".into(),
                url_file.to_string_lossy().into_owned().into(),
            );
            spool.insert("pool_size".into(), 4.into());
            spool.insert(
                "lease_ttl_ms".into(),
                i64::try_from(self.lease_ttl.as_millis())
                    .unwrap_or(i64::MAX)
                    .into(),
            );
            config.insert("spool".into(), spool.into());
            let path = self.dir.path().join(format!("sender-{i}.toml"));
            *slot = Some(spawn_sender(&self.bin, &path, &config).await?);
        }
        self.ingest_addrs()
            .first()
            .copied()
            .ok_or_else(|| "no instance started".into())
    }

    async fn kill(&mut self) {
        let i = self.next_kill % self.instances;
        self.next_kill += 1;
        if let Some(Some((mut child, _))) = self.running.get_mut(i).map(Option::take) {
            let _ = child.kill().await;
        }
    }

    async fn stop(&mut self) {
        for slot in &mut self.running {
            if let Some((mut child, _)) = slot.take() {
                let _ = child.kill().await;
            }
        }
        // Dropping it drops the database; its `Drop` runs on a thread of its own.
        let database = self.database.take();
        let _ = tokio::task::spawn_blocking(move || drop(database)).await;
    }

    fn ingest_addrs(&self) -> Vec<SocketAddr> {
        self.running
            .iter()
            .flatten()
            .map(|(_, addr)| *addr)
            .collect()
    }
}
