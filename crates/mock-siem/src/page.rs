//! The page's HTML, rendered on the server from a copy of the mock's state. Every piece of
//! recorded text goes through [`escape`]; no signing secret is within reach of this module (a
//! [`Snapshot`] holds how many there are, not what), and signature header values are not shown.

use crate::faults::Rule;
use crate::html::escape;
use crate::pretty_json::pretty;
use crate::{Delivery, ReceivedEvent, Stats};
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// Where the page's live script is served.
pub(crate) const SCRIPT_PATH: &str = "/_mock/ui/live.js";
/// Where the page's server-sent events are served.
pub(crate) const STREAM_PATH: &str = "/_mock/ui/stream";
/// Where a delivery's page is served, followed by its number.
pub(crate) const DELIVERY_PATH: &str = "/_mock/ui/deliveries/";
/// Where the fault form posts.
pub(crate) const FAULTS_PATH: &str = "/_mock/ui/faults";
/// Where the clear-faults form posts.
pub(crate) const CLEAR_FAULTS_PATH: &str = "/_mock/ui/faults/clear";
/// Where the forget-deliveries form posts.
pub(crate) const CLEAR_RECORDS_PATH: &str = "/_mock/ui/records/clear";

/// What the main page shows: a copy taken under the locks, rendered after they are released.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) stats: Stats,
    /// The latest deliveries, newest first, each with its number (counted from 1).
    pub(crate) recent: Vec<(usize, Delivery)>,
    /// How many deliveries are recorded in all.
    pub(crate) total: usize,
    pub(crate) rules: Vec<Rule>,
    /// Requests counted since the rules were set.
    pub(crate) requests: u64,
    /// The webhook's path.
    pub(crate) path: String,
    /// How many signing secrets verify (0: unsigned batches are accepted).
    pub(crate) secrets: usize,
}

/// What a delivery's page shows.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryView {
    /// Its number, counted from 1.
    pub(crate) number: usize,
    pub(crate) delivery: Delivery,
    /// Each event UUID of the batch with the event as first received, when it was recorded.
    pub(crate) events: Vec<(String, Option<ReceivedEvent>)>,
}

const STYLE: &str = r#"
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#eef1f4;--bg:#f6f8fa;--ok:#1a7f37;--warn:#7d4e00;--bad:#cf222e;--link:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
header{display:flex;align-items:baseline;gap:8px 20px;flex-wrap:wrap;padding:12px 24px;background:#fff;border-bottom:1px solid var(--line)}
header h1{font-size:18px;margin:0}
.muted{color:var(--muted)}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
main{display:grid;grid-template-columns:minmax(0,1fr) 350px;grid-template-rows:auto auto 1fr;grid-template-areas:"stats stats" "deliveries rules" "deliveries form";gap:16px;padding:16px 24px;align-items:start}
main.single{display:block;max-width:1100px}
main.single section{margin-bottom:16px}
#live{display:contents}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;min-width:0}
h2{font-size:15px;margin:0 0 8px}
.stats{grid-area:stats;display:flex;flex-wrap:wrap;gap:8px 32px}
.stat{display:flex;flex-direction:column}.stat b{font-size:20px;font-variant-numeric:tabular-nums}
.stat span{color:var(--muted);font-size:12px}
.deliveries{grid-area:deliveries;overflow-x:auto}
.rules{grid-area:rules}.rules ol{margin:0 0 8px;padding-left:20px}
.form{grid-area:form}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--soft);white-space:nowrap;vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600}
.accepted{background:#dafbe1;color:var(--ok)}.fault{background:#fff1c2;color:var(--warn)}.refused{background:#ffebe9;color:var(--bad)}
fieldset{border:1px solid var(--line);border-radius:6px;margin:8px 0;padding:4px 10px}
legend{color:var(--muted);font-size:12px}
label{display:block;margin:5px 0}label.sub{margin-left:24px}
body[data-live=connected] #conn{color:var(--ok)}
input[type=number]{width:76px;padding:2px 4px;font:inherit}
button{font:inherit;padding:4px 12px;border:1px solid var(--line);border-radius:6px;background:var(--bg);cursor:pointer}
button.primary{background:#1f883d;border-color:#1a7f37;color:#fff}
.buttons{display:flex;gap:8px;flex-wrap:wrap;margin:8px 0}
.inline{display:inline}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}dt{color:var(--muted)}dd{margin:0}
pre{background:var(--bg);border:1px solid var(--soft);border-radius:6px;padding:8px 12px;overflow-x:auto;margin:6px 0 12px}
h3{font-size:13px;margin:12px 0 0;font-weight:600}
.empty{color:var(--muted);margin:4px 0}
@media (max-width:900px){main{grid-template-columns:minmax(0,1fr);grid-template-rows:auto;grid-template-areas:"stats" "rules" "form" "deliveries"}}
"#;

/// The page's frame: head (inline style, the live script, a reload every 10 s without
/// JavaScript when `live`), header, and `main`.
fn document(title: &str, header: &str, main_class: &str, main: &str, live: bool) -> String {
    let mut out = String::with_capacity(main.len() + STYLE.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n",
        escape(title)
    );
    if live {
        let _ = write!(
            out,
            "<noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>\n\
             <script src=\"{SCRIPT_PATH}\" defer></script>\n"
        );
    }
    let _ = write!(
        out,
        "</head>\n<body>\n<header>{header}</header>\n<main class=\"{main_class}\">\n{main}</main>\n</body>\n</html>\n"
    );
    out
}

/// The main page: stats, deliveries and rules (the live part), and the fault forms.
pub(crate) fn index(snapshot: &Snapshot) -> String {
    let signing = match snapshot.secrets {
        0 => "unsigned batches accepted".to_owned(),
        1 => "signature required (1 secret)".to_owned(),
        n => format!("signature required (any of {n} secrets)"),
    };
    let header = format!(
        "<h1>Mock SIEM</h1><span class=\"muted\">webhook: <code>POST {}</code> · {}</span>\
         <span id=\"conn\" class=\"muted\">reloads every 10 s</span>",
        escape(&snapshot.path),
        escape(&signing)
    );
    let main = format!(
        "<div id=\"live\" data-stream=\"{STREAM_PATH}\">\n{}</div>\n{}",
        live(snapshot),
        fault_forms()
    );
    document("Mock SIEM", &header, "", &main, true)
}

/// The part of the main page that changes: the stats, the rules in force and the deliveries.
/// The live script swaps it in as the server pushes it.
pub(crate) fn live(snapshot: &Snapshot) -> String {
    let mut out = String::with_capacity(2048 + snapshot.recent.len() * 400);
    stats(&mut out, &snapshot.stats);
    rules(&mut out, &snapshot.rules, snapshot.requests);
    deliveries(&mut out, snapshot);
    out
}

fn stats(out: &mut String, stats: &Stats) {
    let r = &stats.rejected;
    let refused = r.bad_signature
        + r.missing_signature
        + r.stale
        + r.malformed
        + r.unsupported_schema
        + r.too_large
        + r.in_flight
        + r.dedup_unavailable;
    let _ = write!(out, "<section class=\"stats\" id=\"stats\">");
    for (label, value) in [
        ("deliveries", stats.deliveries),
        ("accepted", stats.accepted_deliveries),
        ("refused", refused),
        ("faults injected", stats.faults_injected),
        ("events received", stats.events_received),
        ("unique events", stats.unique_events),
        ("duplicates", stats.duplicate_events),
    ] {
        let _ = write!(
            out,
            "<div class=\"stat\" data-stat=\"{label}\"><b>{value}</b><span>{label}</span></div>"
        );
    }
    let reasons: Vec<String> = [
        ("bad signature", r.bad_signature),
        ("missing signature", r.missing_signature),
        ("stale", r.stale),
        ("malformed", r.malformed),
        ("unsupported schema", r.unsupported_schema),
        ("too large", r.too_large),
        ("in flight", r.in_flight),
        ("dedup unavailable", r.dedup_unavailable),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(reason, n)| format!("{reason}: {n}"))
    .collect();
    if !reasons.is_empty() {
        let _ = write!(
            out,
            "<div class=\"stat\"><span>refused by reason</span>{}</div>",
            escape(&reasons.join(", "))
        );
    }
    out.push_str("</section>\n");
}

fn rules(out: &mut String, rules: &[Rule], requests: u64) {
    out.push_str("<section class=\"rules\" id=\"rules\"><h2>Faults in force</h2>");
    if rules.is_empty() {
        out.push_str(
            "<p class=\"empty\">None: every request is verified and recorded normally.</p>",
        );
    } else {
        out.push_str("<ol>");
        for rule in rules {
            let _ = write!(out, "<li>{}</li>", escape(&rule.to_string()));
        }
        let plural = if requests == 1 { "" } else { "s" };
        let _ = write!(
            out,
            "</ol><p class=\"muted\">{requests} request{plural} counted since the rules were set; \
             the first rule that matches a request acts.</p>"
        );
    }
    out.push_str("</section>\n");
}

/// `accepted`, `refused` or `fault`, and the reason: a refusal's reason code or the fault.
fn verdict(recorded: &str) -> (&'static str, &str) {
    if recorded == "accepted" {
        ("accepted", "")
    } else if let Some(fault) = recorded.strip_prefix("fault:") {
        ("fault", fault)
    } else {
        ("refused", recorded)
    }
}

/// `HH:MM:SS.mmm` (UTC) of a Unix time in milliseconds, and the full RFC 3339 time.
fn time(unix_ms: u64) -> (String, String) {
    let full = evo_siem_protocol::format_generated_at(UNIX_EPOCH + Duration::from_millis(unix_ms));
    (full.get(11..23).unwrap_or(&full).to_owned(), full)
}

fn status(status: u16) -> String {
    if status == 0 {
        "none".to_owned()
    } else {
        status.to_string()
    }
}

fn deliveries(out: &mut String, snapshot: &Snapshot) {
    let _ = write!(
        out,
        "<section class=\"deliveries\"><h2>Deliveries <span class=\"muted\">{} in all, newest first</span></h2>",
        snapshot.total
    );
    if snapshot.recent.is_empty() {
        let _ = writeln!(
            out,
            "<p class=\"empty\">No delivery yet. Point a sender at <code>{}</code> on this host and port.</p></section>",
            escape(&snapshot.path)
        );
        return;
    }
    out.push_str(
        "<table id=\"deliveries\"><thead><tr><th>#</th><th>time (UTC)</th><th>delivery id</th>\
         <th>attempt</th><th>verdict</th><th>reason</th><th>status</th><th>events</th></tr></thead><tbody>",
    );
    for (number, d) in &snapshot.recent {
        let (class, reason) = verdict(&d.verdict);
        let (clock, full) = time(d.received_at_ms);
        let _ = write!(
            out,
            "<tr data-verdict=\"{class}\" data-status=\"{}\"><td class=\"num\"><a href=\"{DELIVERY_PATH}{number}\">{number}</a></td>\
             <td class=\"mono\" title=\"{}\">{}</td>\
             <td class=\"mono\"><a href=\"{DELIVERY_PATH}{number}\">{}</a></td>\
             <td class=\"num\">{}</td><td><span class=\"badge {class}\">{class}</span></td>\
             <td class=\"mono\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            d.status,
            escape(&full),
            escape(&clock),
            escape(d.delivery_id.as_deref().unwrap_or("(none)")),
            escape(d.attempt.as_deref().unwrap_or("")),
            escape(reason),
            status(d.status),
            d.events.len(),
        );
    }
    out.push_str("</tbody></table>");
    if snapshot.total > snapshot.recent.len() {
        let _ = write!(
            out,
            "<p class=\"muted\">The latest {} of {} are shown; <code>GET /_mock/deliveries</code> lists them all.</p>",
            snapshot.recent.len(),
            snapshot.total
        );
    }
    out.push_str("</section>\n");
}

/// The fault form, the clear-faults form and the forget-deliveries form. Outside the live part,
/// so that an update never clears what is being typed.
fn fault_forms() -> String {
    format!(
        r#"<section class="form"><h2>Inject a fault</h2>
<form id="fault-form" method="post" action="{FAULTS_PATH}">
<label>For the next <input type="number" name="count" min="1" value="1" aria-label="number of requests"> requests <span class="muted">(empty: every request)</span></label>
<fieldset><legend>do this</legend>
<label><input type="radio" name="action" value="status" checked> fail with status <input type="number" name="status" min="100" max="599" value="503" aria-label="status"></label>
<label class="sub">and Retry-After <input type="number" name="retry_after" min="0" placeholder="none" aria-label="Retry-After seconds"> s</label>
<label><input type="radio" name="action" value="drop"> drop the connection</label>
<label><input type="radio" name="action" value="reset"> reset the connection</label>
<label><input type="radio" name="action" value="accept_then_hang"> accept, then hang</label>
<label><input type="radio" name="action" value="delay"> delay <input type="number" name="delay_ms" min="0" value="800" aria-label="delay in milliseconds"> ms, then process</label>
<label><input type="radio" name="action" value="clock_skew"> skew the clock by <input type="number" name="clock_skew_s" min="-86400" max="86400" value="600" aria-label="clock skew in seconds"> s <span class="muted">(negative: behind; past 300 s, stale: 401)</span></label>
</fieldset>
<div class="buttons"><button type="submit" class="primary" id="set-fault" name="mode" value="replace">Set</button><button type="submit" id="add-fault" name="mode" value="add">Add to the rules</button></div>
</form>
<div class="buttons"><form class="inline" method="post" action="{CLEAR_FAULTS_PATH}"><button type="submit" id="clear-faults">Clear all faults</button></form><form class="inline" method="post" action="{CLEAR_RECORDS_PATH}"><button type="submit" id="clear-records">Forget deliveries</button></form></div>
<p class="muted">Setting or adding a rule restarts the request count. Every rule kind: <code>POST /_mock/faults</code>.</p>
</section>
"#
    )
}

/// A delivery's page: what it was, the events of its batch (raw JSON, pretty-printed) and its
/// headers.
pub(crate) fn delivery(view: &DeliveryView) -> String {
    let d = &view.delivery;
    let (class, reason) = verdict(&d.verdict);
    let (_, full) = time(d.received_at_ms);
    let header = format!(
        "<a href=\"/\">← Mock SIEM</a><h1>Delivery #{}</h1><span class=\"mono muted\">{}</span>",
        view.number,
        escape(d.delivery_id.as_deref().unwrap_or("(no delivery id)"))
    );
    let mut main = String::new();
    let _ = writeln!(
        main,
        "<section><dl><dt>arrived</dt><dd class=\"mono\">{}</dd>\
         <dt>delivery id</dt><dd class=\"mono\">{}</dd><dt>attempt</dt><dd>{}</dd>\
         <dt>verdict</dt><dd><span class=\"badge {class}\">{class}</span></dd>\
         <dt>reason</dt><dd class=\"mono\">{}</dd><dt>status answered</dt><dd>{}</dd>\
         <dt>events</dt><dd>{}</dd><dt>age on arrival</dt><dd>{}</dd></dl></section>",
        escape(&full),
        escape(d.delivery_id.as_deref().unwrap_or("(none)")),
        escape(d.attempt.as_deref().unwrap_or("(none)")),
        escape(if reason.is_empty() { "-" } else { reason }),
        status(d.status),
        d.events.len(),
        d.age_ms
            .map_or_else(|| "unknown".to_owned(), |ms| format!("{ms} ms")),
    );
    let _ = write!(
        main,
        "<section id=\"events\"><h2>Events <span class=\"muted\">{}</span></h2>",
        view.events.len()
    );
    if view.events.is_empty() {
        main.push_str(
            "<p class=\"empty\">None recorded: the batch was refused, or the connection ended \
             before it was read.</p>",
        );
    }
    for (uuid, event) in &view.events {
        match event {
            Some(event) => {
                let _ = write!(
                    main,
                    "<h3><code>{}</code> {}</h3><pre>{}</pre>",
                    escape(uuid),
                    escape(&event.action),
                    escape(&pretty(&event.raw))
                );
            }
            None => {
                let _ = write!(
                    main,
                    "<h3><code>{}</code></h3><p class=\"empty\">Not recorded: this batch was \
                     answered by a fault before it was processed, and the event has not \
                     arrived otherwise.</p>",
                    escape(uuid)
                );
            }
        }
    }
    main.push_str("</section>\n");
    main.push_str(
        "<section><h2>Request headers</h2><table><thead><tr><th>name</th><th>value</th></tr></thead><tbody>",
    );
    for (name, value) in &d.headers {
        let shown = if name.to_ascii_lowercase().contains("signature") {
            "(present, not shown)"
        } else {
            value.as_str()
        };
        let _ = write!(
            main,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            escape(name),
            escape(shown)
        );
    }
    main.push_str("</tbody></table></section>\n");
    document(
        &format!("Delivery #{} · Mock SIEM", view.number),
        &header,
        "single",
        &main,
        false,
    )
}

/// A short page for an error or a refusal, with a link back.
pub(crate) fn message(title: &str, text: &str) -> String {
    let header = format!("<a href=\"/\">← Mock SIEM</a><h1>{}</h1>", escape(title));
    let main = format!(
        "<section><p>{}</p><p><a href=\"/\">Back to the mock SIEM</a></p></section>\n",
        escape(text)
    );
    document(title, &header, "single", &main, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_split_into_kind_and_reason() {
        assert_eq!(verdict("accepted"), ("accepted", ""));
        assert_eq!(verdict("fault:status 503"), ("fault", "status 503"));
        assert_eq!(
            verdict("signature_mismatch"),
            ("refused", "signature_mismatch")
        );
    }

    #[test]
    fn times_show_the_clock_and_keep_the_date() {
        assert_eq!(
            time(1_705_314_605_123),
            (
                "10:30:05.123".to_owned(),
                "2024-01-15T10:30:05.123Z".to_owned()
            )
        );
    }
}
