//! The servers some of the workspace's tests use, started when they are not running:
//! PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379, through the project's
//! `scripts/services.sh` (which starts them with the machine's own commands, installing them
//! from Debian's packages first when they are missing and it runs as root).
//!
//! A test calls [`postgres`] or [`redis`] before connecting. When the server answers, or when
//! the test is pointed at another server (`EVO_SIEM_TEST_POSTGRES`, `EVO_SIEM_REDIS_URL`),
//! nothing is done. Otherwise the script runs once per test process, and once at a time across
//! processes (a file lock: `cargo test` may run several test binaries), and the call returns
//! when the server answers. So `cargo test --workspace` on a fresh machine needs no step before
//! it.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why a server could not be made available.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServicesError {
    /// The script could not be run, or failed.
    #[error("{script} failed ({status}): {output}")]
    Script {
        /// The script's path.
        script: String,
        /// How it ended.
        status: String,
        /// What it wrote on standard error and output.
        output: String,
    },
    /// The script ran, yet nothing answers.
    #[error("nothing answers on 127.0.0.1:{port} after {script} ran")]
    NotListening {
        /// The port waited for.
        port: u16,
        /// The script's path.
        script: String,
    },
    /// The lock file serialising the script across processes could not be taken.
    #[error("cannot lock {path}: {message}")]
    Lock {
        /// The lock file.
        path: String,
        /// The I/O error.
        message: String,
    },
}

/// One server on a local port, and the outcome of making it available in this process.
#[derive(Debug)]
pub struct Service {
    port: u16,
    /// The environment variable that points the tests at another server instead.
    elsewhere: &'static str,
    outcome: OnceLock<Result<(), ServicesError>>,
}

impl Service {
    /// A server on 127.0.0.1:`port`, unless `elsewhere` names another one.
    pub const fn new(port: u16, elsewhere: &'static str) -> Self {
        Self {
            port,
            elsewhere,
            outcome: OnceLock::new(),
        }
    }

    /// Makes sure the server answers, running `script` (once in this process, once at a time
    /// across processes) when it does not, and waiting up to `wait` for it afterwards.
    pub fn ensure_with(&self, script: &Path, wait: Duration) -> Result<(), ServicesError> {
        if std::env::var_os(self.elsewhere).is_some() || answers(self.port) {
            return Ok(());
        }
        self.outcome
            .get_or_init(|| start(self.port, script, wait))
            .clone()
    }
}

/// The project's script, from this crate's place in the workspace.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/services.sh")
}

/// How long a server may take to answer once the script has run (it waits itself too).
const WAIT: Duration = Duration::from_secs(30);

static POSTGRES: Service = Service::new(5432, "EVO_SIEM_TEST_POSTGRES");
static REDIS: Service = Service::new(6379, "EVO_SIEM_REDIS_URL");

/// Makes sure PostgreSQL answers on 127.0.0.1:5432 (the server of
/// `evo_siem_sender::spool::scratch`), unless `EVO_SIEM_TEST_POSTGRES` names another.
pub fn postgres() -> Result<(), ServicesError> {
    POSTGRES.ensure_with(&script(), WAIT)
}

/// Makes sure Redis answers on 127.0.0.1:6379, unless `EVO_SIEM_REDIS_URL` names another.
pub fn redis() -> Result<(), ServicesError> {
    REDIS.ensure_with(&script(), WAIT)
}

/// Whether something accepts connections on 127.0.0.1:`port`.
fn answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

fn start(port: u16, script: &Path, wait: Duration) -> Result<(), ServicesError> {
    let lock_path = std::env::temp_dir().join("evo-siem-test-services.lock");
    let lock_error = |e: std::io::Error| ServicesError::Lock {
        path: lock_path.display().to_string(),
        message: e.to_string(),
    };
    let lock = std::fs::File::create(&lock_path).map_err(lock_error)?;
    lock.lock().map_err(lock_error)?;
    // Another process may have started it while this one waited for the lock.
    if answers(port) {
        return Ok(());
    }
    let shown = script.display().to_string();
    let output = Command::new("bash")
        .arg(script)
        .output()
        .map_err(|e| ServicesError::Script {
            script: shown.clone(),
            status: "not started".into(),
            output: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(ServicesError::Script {
            script: shown,
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            ),
        });
    }
    let started = Instant::now();
    while !answers(port) {
        if started.elapsed() > wait {
            return Err(ServicesError::NotListening {
                port,
                script: shown,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
    // The lock is released when `lock` is dropped.
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A port nothing listens on (bound, then freed).
    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn script_file(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("services.sh");
        std::fs::write(&path, body).unwrap();
        path
    }

    #[test]
    fn a_server_that_answers_runs_no_script() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let failing = script_file(dir.path(), "exit 1\n");
        let service = Service::new(port, "EVO_SIEM_TEST_SERVICES_UNSET");
        assert!(service.ensure_with(&failing, WAIT).is_ok());
    }

    /// Callers racing for a server that is down run the script once; each returns once the
    /// server (started here when the script says so) answers.
    #[test]
    fn the_script_runs_once_and_the_callers_wait_for_the_server() {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        let script = script_file(dir.path(), &format!("echo run >> {}\n", runs.display()));
        // The "server": listens a while after the script has run, as a real one starts.
        let watched = runs.clone();
        let server = std::thread::spawn(move || {
            while !watched.exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(300));
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
            std::thread::sleep(Duration::from_secs(3));
            drop(listener);
        });
        let service = Service::new(port, "EVO_SIEM_TEST_SERVICES_UNSET");
        std::thread::scope(|scope| {
            let callers: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| service.ensure_with(&script, Duration::from_secs(5))))
                .collect();
            for caller in callers {
                assert!(caller.join().unwrap().is_ok());
                assert!(answers(port), "returned before the server answered");
            }
        });
        assert_eq!(std::fs::read_to_string(&runs).unwrap(), "run\n");
        server.join().unwrap();
    }

    #[test]
    fn a_failing_script_or_a_server_that_never_comes_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let failing = script_file(dir.path(), "echo 'install redis-server' >&2\nexit 3\n");
        let service = Service::new(free_port(), "EVO_SIEM_TEST_SERVICES_UNSET");
        let err = service.ensure_with(&failing, WAIT).unwrap_err().to_string();
        assert!(err.contains("install redis-server"), "{err}");
        assert!(err.contains("services.sh"), "{err}");

        let silent = script_file(dir.path(), "true\n");
        let port = free_port();
        let service = Service::new(port, "EVO_SIEM_TEST_SERVICES_UNSET");
        let err = service
            .ensure_with(&silent, Duration::from_millis(200))
            .unwrap_err();
        assert!(
            matches!(err, ServicesError::NotListening { port: p, .. } if p == port),
            "{err}"
        );
    }
}
