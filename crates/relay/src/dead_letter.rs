//! The dead-letter file: events an output refuses for good (an Elasticsearch mapping error, a
//! HEC "invalid data format"), one JSON object a line, so that an operator can see why, fix the
//! cause and replay them. Writing one is part of acknowledging the event: the relay answers 2xx
//! only once the record is on the disk.
//!
//! ```json
//! {"time":"2024-01-15T10:30:05.123Z","output":"elasticsearch","reason":"400 mapper_parsing_exception: ...","uuid":"...","event":{...}}
//! ```
//!
//! `event` is the event's JSON exactly as received (line breaks aside), whatever the output's
//! format.

use crate::append::AppendFile;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One event refused for good.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// The output that refused it.
    pub output: &'a str,
    /// Why, in the destination's words.
    pub reason: &'a str,
    /// `data.uuid`.
    pub uuid: &'a str,
    /// The event's received JSON, on one line.
    pub event: &'a str,
}

/// The dead-letter file.
#[derive(Debug, Clone)]
pub struct DeadLetterFile {
    file: AppendFile,
}

impl DeadLetterFile {
    /// The file at `path`, created at the first dead letter.
    pub fn new(path: PathBuf) -> Self {
        Self {
            file: AppendFile::new(path),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Appends `letters` and flushes them to the disk.
    pub async fn write(&self, letters: &[DeadLetter<'_>]) -> std::io::Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        let time = evo_siem_protocol::format_generated_at(SystemTime::now());
        let mut out = Vec::new();
        for letter in letters {
            let line = format!(
                r#"{{"time":{},"output":{},"reason":{},"uuid":{},"event":{}}}"#,
                serde_json::Value::from(time.as_str()),
                serde_json::Value::from(letter.output),
                serde_json::Value::from(letter.reason),
                serde_json::Value::from(letter.uuid),
                letter.event,
            );
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        self.file.append(out).await
    }

    /// Closes the file (SIGHUP, after a log rotation); the next dead letter opens `path`
    /// afresh, so that no empty file appears while there is none.
    pub fn reopen(&self) {
        self.file.close();
    }
}
