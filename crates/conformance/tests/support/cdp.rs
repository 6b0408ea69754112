//! Just enough of the Chrome DevTools Protocol to drive a headless Chromium from a test: one
//! page, navigate, evaluate, wait for a condition, screenshot.
//!
//! Chromium is started with `--remote-debugging-pipe`, which speaks CDP on file descriptors 3
//! (commands in) and 4 (answers and events out), each message a JSON object ended by a NUL byte
//! (the transport Puppeteer uses). A `sh` wrapper points those descriptors at the child's stdin
//! and stdout, so there is no port to pick, no WebSocket and no driver binary. Every call has a
//! timeout; the browser is killed when dropped.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The longest one CDP command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest message read from the browser (a screenshot is the largest).
const MAX_MESSAGE: usize = 64 << 20;

/// What went wrong talking to the browser.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;

/// A headless Chromium with one page attached.
#[derive(Debug)]
pub(crate) struct Browser {
    child: Child,
    to_browser: ChildStdin,
    from_browser: BufReader<ChildStdout>,
    next_id: u64,
    /// The attached page's session.
    session: Option<String>,
    /// The profile directory and the browser's log.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromium` headless and opens a blank page of `width` x `height` CSS pixels.
    pub(crate) async fn launch(chromium: &str, width: u32, height: u32) -> Result<Self, Error> {
        let dir = tempfile::tempdir()?;
        let profile = dir.path().join("profile");
        let log = std::fs::File::create(dir.path().join("chromium.log"))?;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$@" 3<&0 4>&1 </dev/null >&2"#)
            .arg("sh")
            .arg(chromium)
            .args([
                "--headless",
                // As root, or in a container without user namespaces, the sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-pipe",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--mute-audio",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let to_browser = child.stdin.take().ok_or("no pipe to the browser")?;
        let from_browser = BufReader::new(child.stdout.take().ok_or("no pipe from the browser")?);
        let mut browser = Self {
            child,
            to_browser,
            from_browser,
            next_id: 0,
            session: None,
            dir,
        };
        let target = browser
            .call_on(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let target = target["targetId"]
            .as_str()
            .ok_or("no target id")?
            .to_owned();
        let attached = browser
            .call_on(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await?;
        browser.session = Some(
            attached["sessionId"]
                .as_str()
                .ok_or("no session id")?
                .to_owned(),
        );
        browser.call("Page.enable", json!({})).await?;
        browser
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await?;
        Ok(browser)
    }

    /// The last lines the browser logged, for a failure message.
    pub(crate) fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("chromium.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Sends a command to the page.
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        let session = self.session.clone();
        self.call_on(session.as_deref(), method, params).await
    }

    async fn call_on(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Error> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message)?;
        bytes.push(0);
        let exchange = async {
            self.to_browser.write_all(&bytes).await?;
            self.to_browser.flush().await?;
            let mut buffer = Vec::new();
            loop {
                buffer.clear();
                let read = (&mut self.from_browser)
                    .take(MAX_MESSAGE as u64)
                    .read_until(0, &mut buffer)
                    .await?;
                if read == 0 || buffer.last() != Some(&0) {
                    return Err::<Value, Error>("the browser closed its pipe".into());
                }
                buffer.pop();
                let answer: Value = serde_json::from_slice(&buffer)?;
                // Events, and answers to nothing we wait for, are skipped.
                if answer["id"].as_u64() != Some(id) {
                    continue;
                }
                if let Some(error) = answer.get("error") {
                    return Err(format!("{method}: {error}").into());
                }
                return Ok(answer["result"].clone());
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method}: no answer in {CALL_TIMEOUT:?}"))?
    }

    /// Loads `url` and waits until it is loaded.
    pub(crate) async fn goto(&mut self, url: &str) -> Result<(), Error> {
        let answer = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(error) = answer.get("errorText").and_then(Value::as_str) {
            return Err(format!("cannot load {url}: {error}").into());
        }
        let condition = format!(
            "document.readyState === 'complete' && location.href === {}",
            json!(url)
        );
        self.wait_for(&format!("{url} to load"), &condition).await?;
        Ok(())
    }

    /// Evaluates `expression` in the page (promises awaited) and returns its value.
    pub(crate) async fn eval(&mut self, expression: &str) -> Result<Value, Error> {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = answer.get("exceptionDetails") {
            return Err(format!("{expression}: {exception}").into());
        }
        Ok(answer["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    /// Polls `expression` until it is truthy, for up to 30 s, and returns its value. A page in
    /// the middle of loading cannot evaluate: that counts as not yet.
    pub(crate) async fn wait_for(&mut self, what: &str, expression: &str) -> Result<Value, Error> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let last = match self.eval(expression).await {
                Ok(value) if truthy(&value) => return Ok(value),
                Ok(value) => value.to_string(),
                Err(err) => err.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                let text = self
                    .eval("document.body ? document.body.innerText : ''")
                    .await
                    .unwrap_or_default();
                return Err(format!(
                    "gave up waiting for {what} ({expression}); last: {last}; the page says: {text}"
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of the page's viewport at `path`.
    pub(crate) async fn screenshot(&mut self, path: &Path) -> Result<PathBuf, Error> {
        use base64::Engine as _;
        let answer = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await?;
        let data = answer["data"].as_str().ok_or("no screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        std::fs::write(path, png)?;
        Ok(path.to_owned())
    }

    /// Asks the browser to quit, and kills it if it does not within 10 s.
    pub(crate) async fn close(mut self) {
        let _ = self.call_on(None, "Browser.close", json!({})).await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// JavaScript's truthiness of a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}
