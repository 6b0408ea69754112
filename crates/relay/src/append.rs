//! [`AppendFile`]: a file written by appending whole buffers, each made durable (`fsync`)
//! before the call returns, and reopened on demand after a log rotation.
//!
//! The blocking calls run on tokio's blocking pool, never on the runtime's workers. A buffer is
//! written whole or not at all: when a write fails half-way (a full disk), the file is cut back
//! to its length before the write, so that the next line does not start in the middle of a
//! broken one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An append-only file; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct AppendFile {
    path: Arc<PathBuf>,
    /// The open file; `None` until the first write, or after a failed reopen.
    file: Arc<Mutex<Option<File>>>,
}

fn open(path: &Path) -> io::Result<File> {
    // Audit records are sensitive: readable by the owner and its group only.
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl AppendFile {
    /// A file at `path`, opened at the first write.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path: Arc::new(path),
            file: Arc::new(Mutex::new(None)),
        }
    }

    /// The path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes` and flushes them to the disk (`fdatasync`).
    pub(crate) async fn append(&self, bytes: Vec<u8>) -> io::Result<()> {
        let (path, file) = (Arc::clone(&self.path), Arc::clone(&self.file));
        tokio::task::spawn_blocking(move || {
            let mut slot = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(open(&path)?);
            }
            let Some(file) = slot.as_mut() else {
                unreachable!("opened just above")
            };
            let before = file.metadata()?.len();
            let written = file.write_all(&bytes).and_then(|()| file.sync_data());
            if let Err(err) = written {
                // Cut a half-written buffer off; if even that fails, drop the handle so that
                // the next write opens the file afresh.
                if file.set_len(before).is_err() {
                    *slot = None;
                }
                return Err(err);
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Closes the file; the next write opens `path` again.
    pub(crate) fn close(&self) {
        let mut slot = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = None;
    }

    /// Closes the file and opens `path` again (after logrotate moved it away).
    pub(crate) async fn reopen(&self) -> io::Result<()> {
        let (path, file) = (Arc::clone(&self.path), Arc::clone(&self.file));
        tokio::task::spawn_blocking(move || {
            let mut slot = file
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *slot = None;
            *slot = Some(open(&path)?);
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}
