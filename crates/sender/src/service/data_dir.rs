//! The data directory's permissions: `data_dir` holds signing secrets, header values, admin
//! token hashes (`integrations.db`) and the tenants' queued audit events (`spool.db`), so on Unix
//! it is kept `0700` and the files the sender writes there `0600`, whatever the umask.
//!
//! No umask is changed (that is process-wide). Instead the directory is created (or tightened)
//! before anything opens a database in it, and the databases are created empty with `0600`
//! before SQLite opens them: SQLite gives a new `-wal`, `-shm` or `-journal` file the mode of its
//! database, so they follow. Files already there, from an older version or a CLI run, are
//! tightened too. A looser existing directory is tightened, with a warning, rather than refused:
//! refusing would stop an upgrade on a directory that earlier versions created `0755`.

use super::{Config, ConfigError, SpoolBackend};
use std::io;
use std::path::Path;

/// The directory's mode on Unix: the sender's user only.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;

/// The mode of every file the sender writes in the directory on Unix.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// The databases in `data_dir` and the companions SQLite creates beside them.
const DATABASES: [&str; 2] = ["integrations.db", "spool.db"];
#[cfg(unix)]
const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Creates `config.data_dir` (`0700`) or tightens it, tightens the files already in it to
/// `0600`, and creates the databases this configuration will open (`integrations.db`, and
/// `spool.db` with the SQLite spool) empty with `0600`. Call it before opening any of them.
pub(crate) fn prepare(config: &Config) -> Result<(), ConfigError> {
    let dir = &config.data_dir;
    let sqlite = config.spool.backend == SpoolBackend::Sqlite;
    let used: &[&str] = if sqlite { &DATABASES } else { &DATABASES[..1] };
    prepare_dir(dir, used).map_err(|source| ConfigError::DataDir {
        path: dir.clone(),
        source,
    })
}

#[cfg(unix)]
fn prepare_dir(dir: &Path, used: &[&str]) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode != DIR_MODE {
        tracing::warn!(
            path = %dir.display(),
            mode = format_args!("{mode:o}"),
            "data_dir was readable by others: tightened to 0700"
        );
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
    }
    for database in DATABASES {
        for suffix in std::iter::once("").chain(COMPANIONS) {
            let path = dir.join(format!("{database}{suffix}"));
            match std::fs::metadata(&path) {
                Ok(meta) if meta.permissions().mode() & 0o777 != FILE_MODE => {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(FILE_MODE))?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    for database in used {
        // `create` without `truncate`: an existing database is left as it is. An empty file is
        // a valid new SQLite database.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(dir.join(database))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn prepare_dir(dir: &Path, _used: &[&str]) -> io::Result<()> {
    // No Unix modes: the directory's ACL is inherited from its parent.
    std::fs::create_dir_all(dir)
}
