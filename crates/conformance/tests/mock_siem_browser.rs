//! The mock SIEM's page in a real browser (Debian's headless Chromium), with the real sender
//! delivering to it: a delivery appears live, a fault set through the page's form refuses the
//! sender's next attempt, a delivery's page shows an event's markup as text, a screenshot is
//! saved at `target/mock-siem-browser.png`, and with JavaScript off the page is whole and its
//! forms work.
//!
//! `scripts/chromium.sh` installs Chromium when it is missing (as root, with apt-get). When it
//! cannot, this test prints why and passes as skipped, unless `EVO_SIEM_REQUIRE_BROWSER=1`,
//! which makes that a failure.

#[path = "support/cdp.rs"]
mod cdp;

use cdp::Browser;
use evo_siem_mock::faults::{Action, Rule, When};
use evo_siem_mock::{MockSiem, MockSiemConfig};
use evo_siem_protocol::Secret;
use evo_siem_sender::batcher::BatchLimits;
use evo_siem_sender::dispatch::{DispatchSettings, Dispatcher};
use evo_siem_sender::retry::Backoff;
use evo_siem_sender::spool::{BacklogLimits, NewEvent, Spool, SqliteSpool};
use evo_siem_sender::{Integration, Step, Worker};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "whsec-browser-test-5b1e";
/// Markup in an event's field, which the page must show as text; were it parsed, it would set
/// `window.__xss`.
const MARKUP: &str = r#"<script>window.__xss=1</script><img src=x onerror="window.__xss=1">"#;

/// The browser's path, or `None` (after saying why) when it cannot be installed.
async fn chromium() -> Option<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/chromium.sh");
    let run = tokio::process::Command::new("bash")
        .arg(script)
        .kill_on_drop(true)
        .output();
    // Installing takes a minute or two the first time; finding it, milliseconds.
    let why = match tokio::time::timeout(Duration::from_secs(600), run).await {
        Ok(Ok(out)) if out.status.success() => {
            let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !path.is_empty() {
                return Some(path);
            }
            "scripts/chromium.sh printed no path".to_owned()
        }
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        Ok(Err(err)) => format!("cannot run {script}: {err}"),
        Err(_) => "scripts/chromium.sh took more than 10 minutes".to_owned(),
    };
    assert!(
        std::env::var("EVO_SIEM_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "EVO_SIEM_REQUIRE_BROWSER=1 and no browser: {why}"
    );
    // Straight to stderr, past the test harness's capture, so that the skip shows in every run.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED mock_siem_browser: no headless Chromium ({why})"
    );
    None
}

fn event(actor: &str) -> NewEvent {
    let json = format!(
        r#"{{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{{"uuid":"{}","action":"Role assigned","status":"Success","actor":{{"kind":"User","name":{}}},"origin":{{"hostname":"DESKTOP-ABC","ipaddr":"192.0.2.10"}},"target":{{"kind":"Role","name":"admin"}},"ts":1706000000123456789,"created_at":1706000000123456789}}}}"#,
        uuid::Uuid::new_v4(),
        serde_json::to_string(actor).unwrap()
    );
    NewEvent {
        action: "Role assigned".into(),
        json,
    }
}

/// The real sender, in process: a SQLite spool and one integration's worker.
struct Sender {
    spool: Arc<SqliteSpool>,
    worker: Worker,
    _dir: tempfile::TempDir,
}

impl Sender {
    fn new(siem: &MockSiem) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(
            SqliteSpool::open(&dir.path().join("spool.db"), BacklogLimits::default()).unwrap(),
        );
        let allowed = vec!["127.0.0.1/32".parse().unwrap()];
        let integration = Integration::new("acme", &siem.webhook_url(), &allowed)
            .unwrap()
            .with_secret(Secret::new(SECRET))
            .with_limits(BatchLimits::new(100, 1 << 20, Duration::ZERO).unwrap());
        let settings = DispatchSettings {
            timeout: Duration::from_secs(10),
            allowed,
            ..DispatchSettings::default()
        };
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50)).unwrap();
        let worker = Worker::new(
            spool.clone(),
            Dispatcher::new(&settings).unwrap(),
            Arc::new(integration),
            backoff,
        );
        Self {
            spool,
            worker,
            _dir: dir,
        }
    }

    /// Ingests `events` and delivers until the spool is empty.
    async fn deliver(&mut self, events: Vec<NewEvent>) {
        self.spool.append("acme", events).await.unwrap();
        let drain = async {
            loop {
                match self.worker.step().await.unwrap() {
                    Step::Idle => return,
                    Step::Wait(after) | Step::Backoff(after) => tokio::time::sleep(after).await,
                    Step::Progress | Step::Removed => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), drain)
            .await
            .expect("the sender drains its spool within 30 s");
    }
}

fn screenshot_path() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(&tmp).join("mock-siem-browser.png")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_the_senders_deliveries_live_and_sets_a_fault_with_its_form() {
    let Some(chromium) = chromium().await else {
        return;
    };
    let siem = MockSiem::start(
        "127.0.0.1:0".parse().unwrap(),
        MockSiemConfig::signed([SECRET]),
    )
    .await
    .unwrap();
    let home = format!("http://{}/", siem.addr());
    let mut browser = Browser::launch(&chromium, 1280, 860)
        .await
        .unwrap_or_else(|err| panic!("cannot start {chromium}: {err}"));
    let result = drive(&mut browser, &siem, &home).await;
    if let Err(err) = result {
        let log = browser.log_tail();
        let _ = browser
            .screenshot(&screenshot_path().with_file_name("mock-siem-browser-failed.png"))
            .await;
        browser.close().await;
        panic!("{err}\nChromium's log ends with:\n{log}");
    }
    browser.close().await;
}

async fn drive(browser: &mut Browser, siem: &MockSiem, home: &str) -> Result<(), cdp::Error> {
    browser.goto(home).await?;
    browser
        .wait_for(
            "the page to go live",
            "document.body.dataset.live === 'connected'",
        )
        .await?;
    // A mark that a reload would wipe: the delivery must come in without one.
    browser.eval("window.__loaded = 'first'").await?;

    // The real sender delivers; the row appears by itself.
    let mut sender = Sender::new(siem);
    sender
        .deliver(vec![event(MARKUP), event("zoë@example.com")])
        .await;
    let first = siem.deliveries()[0]
        .delivery_id
        .clone()
        .ok_or("no delivery id")?;
    let row = format!(
        "[...document.querySelectorAll('#deliveries tbody tr')].find(tr => tr.innerText.includes({}))",
        serde_json::json!(first)
    );
    let cells = browser
        .wait_for(
            "the sender's delivery to appear",
            &format!(
                "(() => {{ const tr = {row}; return tr && [...tr.cells].map(td => td.innerText); }})()"
            ),
        )
        .await?;
    assert_eq!(cells[3], "1", "attempt: {cells}");
    assert_eq!(cells[4], "accepted", "verdict: {cells}");
    assert_eq!(cells[6], "200", "status: {cells}");
    assert_eq!(cells[7], "2", "events: {cells}");
    assert_eq!(
        browser.eval("window.__loaded").await?,
        "first",
        "the page reloaded instead of updating live"
    );
    let stat = |name: &str| format!("document.querySelector('[data-stat=\"{name}\"] b').innerText");
    assert_eq!(browser.eval(&stat("unique events")).await?, "2");

    // Fail the next request with 503 through the form, as a user would.
    browser
        .eval(
            "(() => { const form = document.getElementById('fault-form');
                form.elements.count.value = '1';
                form.querySelector('input[name=action][value=status]').click();
                form.elements.status.value = '503';
                form.elements.retry_after.value = '1';
                document.getElementById('set-fault').click();
                return true; })()",
        )
        .await?;
    let rules = browser
        .wait_for(
            "the page to come back with the rule in force",
            "window.__loaded === undefined && document.readyState === 'complete' \
             && location.pathname === '/' && document.querySelector('#rules ol')?.innerText",
        )
        .await?;
    assert_eq!(rules, "the first request: answer 503 with Retry-After: 1");
    assert_eq!(
        siem.fault_rules(),
        [Rule {
            when: When::First(1),
            action: Action::Status {
                status: 503,
                retry_after: Some(1)
            }
        }]
    );
    browser
        .wait_for(
            "the page to go live again",
            "document.body.dataset.live === 'connected'",
        )
        .await?;
    browser.eval("window.__loaded = 'second'").await?;

    // The sender's next attempt is refused with 503, its retry accepted: both show up live.
    sender.deliver(vec![event("ana@example.com")]).await;
    let deliveries = siem.deliveries();
    let summary: Vec<(String, u16, Option<&str>)> = deliveries
        .iter()
        .map(|d| (d.verdict.clone(), d.status, d.attempt.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            ("accepted".to_owned(), 200, Some("1")),
            ("fault:status 503".to_owned(), 503, Some("1")),
            ("accepted".to_owned(), 200, Some("2")),
        ]
    );
    assert_eq!(deliveries[1].delivery_id, deliveries[2].delivery_id);
    let statuses = browser
        .wait_for(
            "the refused attempt and its retry to appear",
            "(() => { const rows = [...document.querySelectorAll('#deliveries tbody tr')];
                return rows.length === 3 && rows.map(tr => tr.cells[6].innerText + ' ' + tr.cells[4].innerText + ' ' + tr.cells[5].innerText).join(', '); })()",
        )
        .await?;
    assert_eq!(
        statuses,
        "200 accepted , 503 fault status 503, 200 accepted "
    );
    assert_eq!(browser.eval("window.__loaded").await?, "second");
    assert_eq!(browser.eval(&stat("faults injected")).await?, "1");

    // A delivery's events, clicked: the markup in an event is text, and nothing of it ran.
    browser
        .eval("document.querySelector('a[href=\"/_mock/ui/deliveries/1\"]').click(), true")
        .await?;
    let text = browser
        .wait_for(
            "the delivery's page",
            "location.pathname === '/_mock/ui/deliveries/1' && document.readyState === 'complete' \
             && document.getElementById('events')?.innerText",
        )
        .await?;
    let text = text.as_str().unwrap_or_default();
    // As it is in the event's JSON: a string, quotes escaped.
    let shown = serde_json::to_string(MARKUP).unwrap();
    assert!(text.contains(&format!("\"name\": {shown}")), "{text}");
    assert!(text.contains("\"ts\": 1706000000123456789"), "{text}");
    assert!(text.contains("zoë@example.com"), "{text}");
    assert_eq!(
        browser
            .eval("document.querySelectorAll('#events script, #events img').length")
            .await?,
        0
    );
    assert_eq!(browser.eval("window.__xss === undefined").await?, true);
    let whole = browser.eval("document.documentElement.outerHTML").await?;
    assert!(!whole.as_str().unwrap_or_default().contains(SECRET));
    browser
        .screenshot(&screenshot_path().with_file_name("mock-siem-browser-delivery.png"))
        .await?;

    // Back to the main page for the screenshot.
    browser.goto(home).await?;
    browser
        .wait_for(
            "the page to go live",
            "document.body.dataset.live === 'connected'",
        )
        .await?;
    let path = browser.screenshot(&screenshot_path()).await?;
    eprintln!("screenshot: {}", path.display());

    // With JavaScript off, the page is whole, and its forms work.
    browser
        .call(
            "Emulation.setScriptExecutionDisabled",
            serde_json::json!({"value": true}),
        )
        .await?;
    browser.goto(home).await?;
    let rows = browser
        .wait_for(
            "the page without JavaScript",
            "document.querySelectorAll('#deliveries tbody tr').length",
        )
        .await?;
    assert_eq!(rows, 3);
    assert_eq!(
        browser
            .eval("document.body.dataset.live === undefined")
            .await?,
        true,
        "the live script ran with JavaScript off"
    );
    browser
        .eval("document.getElementById('clear-faults').click(), true")
        .await?;
    browser
        .wait_for(
            "the faults to be cleared without JavaScript",
            "document.readyState === 'complete' \
             && document.getElementById('rules')?.innerText.includes('None: every request')",
        )
        .await?;
    assert!(siem.fault_rules().is_empty());
    Ok(())
}
