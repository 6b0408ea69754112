//! `type = "file"`: NDJSON, one event a line, appended and flushed to the disk before the relay
//! answers; reopened on SIGHUP so that logrotate can move the file away.

use super::{FailureKind, Output, OutputError, OutputFuture, Record, Sent};
use crate::append::AppendFile;
use crate::config::Format;
use std::path::PathBuf;
use tokio::time::Instant;

/// Writes each event as one line of a local file.
#[derive(Debug)]
pub struct FileOutput {
    name: String,
    format: Format,
    file: AppendFile,
}

impl FileOutput {
    /// An output named `name` appending to `path` (created when missing, mode 0640).
    pub fn new(name: String, format: Format, path: PathBuf) -> Self {
        Self {
            name,
            format,
            file: AppendFile::new(path),
        }
    }
}

fn io_error(what: &str, path: &std::path::Path, err: &std::io::Error) -> OutputError {
    OutputError::new(FailureKind::Io, format!("{what} {}: {err}", path.display()))
}

impl Output for FileOutput {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "file"
    }

    fn format(&self) -> Format {
        self.format
    }

    fn send<'a>(&'a self, records: &'a [Record<'a>], deadline: Instant) -> OutputFuture<'a, Sent> {
        Box::pin(async move {
            let size = records.iter().map(|r| r.payload.len() + 1).sum();
            let mut lines = Vec::with_capacity(size);
            for record in records {
                lines.extend_from_slice(record.payload.as_bytes());
                lines.push(b'\n');
            }
            match tokio::time::timeout_at(deadline, self.file.append(lines)).await {
                Ok(Ok(())) => Ok(Sent::default()),
                Ok(Err(err)) => Err(io_error("cannot write", self.file.path(), &err)),
                Err(_) => Err(OutputError::deadline()),
            }
        })
    }

    fn reopen(&self) -> OutputFuture<'_, ()> {
        Box::pin(async move {
            self.file
                .reopen()
                .await
                .map_err(|err| io_error("cannot reopen", self.file.path(), &err))
        })
    }
}
