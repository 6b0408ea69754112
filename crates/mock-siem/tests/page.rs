//! The mock SIEM's page over HTTP (no browser): it lists deliveries, shows a delivery's events,
//! sets and clears faults with form posts, pushes changes live, escapes what it shows, and
//! shows no secret. The browser test is `crates/conformance/tests/mock_siem_browser.rs`.

use evo_siem_mock::faults::{Action, Rule, When};
use evo_siem_mock::{MockSiem, MockSiemConfig};
use evo_siem_protocol::{Secret, encode_batch_from_text, headers, sign};
use std::time::{Duration, SystemTime};

const SECRET: &str = "whsec-page-test-7f3a9c";
const XSS: &str = "<script>alert(1)</script>";

fn event(actor: &str) -> String {
    format!(
        r#"{{"event_type":"create","table":"events","timestamp":"2024-01-15T10:30:00.000Z","data":{{"uuid":"{}","action":"Role <b>assigned</b>","status":"Success","actor":{{"kind":"User","name":{}}},"origin":{{"hostname":"h","ipaddr":"192.0.2.1"}},"target":{{"kind":"User","name":"u"}},"ts":1706000000123456789,"created_at":1706000000123456789}}}}"#,
        uuid::Uuid::new_v4(),
        serde_json::to_string(actor).unwrap()
    )
}

async fn start() -> MockSiem {
    MockSiem::start(
        "127.0.0.1:0".parse().unwrap(),
        MockSiemConfig::signed([SECRET]),
    )
    .await
    .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Posts a batch of `events`, signed, with `delivery_id`; returns the status and the signature
/// header's value.
async fn deliver(siem: &MockSiem, delivery_id: &str, events: &[String]) -> (u16, String) {
    let texts: Vec<&str> = events.iter().map(String::as_str).collect();
    let body = encode_batch_from_text(&texts, SystemTime::now());
    let signature = sign(&Secret::new(SECRET), &body);
    let status = client()
        .post(siem.webhook_url())
        .header("content-type", "application/json")
        .header(headers::SIGNATURE_256, &signature)
        .header(headers::DELIVERY_ID, delivery_id)
        .header(headers::DELIVERY_ATTEMPT, "1")
        .header("x-note", "<i>note</i>")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    (status, signature)
}

async fn get(siem: &MockSiem, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client()
        .get(format!("http://{}{path}", siem.addr()))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn post_form(siem: &MockSiem, path: &str, form: &str) -> reqwest::Response {
    client()
        .post(format!("http://{}{path}", siem.addr()))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", format!("http://{}", siem.addr()))
        .body(form.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_lists_deliveries_and_shows_their_events_escaped() {
    let siem = start().await;
    let (status, headers, page) = get(&siem, "/").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert!(page.contains("No delivery yet"), "{page}");
    assert!(page.contains("signature required (1 secret)"), "{page}");
    assert!(page.contains("None: every request is verified"), "{page}");

    let id = uuid::Uuid::new_v4().to_string();
    let events = [event(XSS), event("zoë@example.com")];
    let (status, signature) = deliver(&siem, &id, &events).await;
    assert_eq!(status, 200);
    // A delivery id that is markup is listed as text.
    let (status, _) = deliver(&siem, XSS, &[event("ana")]).await;
    assert_eq!(status, 200);

    let (_, _, page) = get(&siem, "/").await;
    assert!(page.contains(&id), "{page}");
    assert!(page.contains("2 in all, newest first"), "{page}");
    let row = page
        .split("<tr ")
        .find(|row| row.contains(&id))
        .expect("a row for the delivery");
    for cell in [
        "data-verdict=\"accepted\"",
        "data-status=\"200\"",
        "<td class=\"num\">1</td>",
        "<td class=\"num\">2</td>",
        "href=\"/_mock/ui/deliveries/1\"",
    ] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains(XSS), "{page}");
    assert!(page.contains("<b>2</b><span>deliveries</span>"), "{page}");
    assert!(
        page.contains("<b>3</b><span>unique events</span>"),
        "{page}"
    );

    let (status, headers, page) = get(&siem, "/_mock/ui/deliveries/1").await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("content-security-policy"));
    assert!(page.contains(&id), "{page}");
    // Each event's raw JSON, pretty-printed, every digit kept, markup as text.
    assert!(page.contains("\n  &quot;data&quot;: {\n"), "{page}");
    assert!(
        page.contains("&quot;ts&quot;: 1706000000123456789"),
        "{page}"
    );
    assert!(
        page.contains("&quot;name&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;"),
        "{page}"
    );
    assert!(page.contains("Role &lt;b&gt;assigned&lt;/b&gt;"), "{page}");
    assert!(page.contains("zoë@example.com"), "{page}");
    assert!(page.contains("&lt;i&gt;note&lt;/i&gt;"), "{page}");
    for markup in [XSS, "<b>assigned", "<i>note"] {
        assert!(!page.contains(markup), "{markup} in {page}");
    }
    // No secret: neither the signing secret nor the signature shows.
    assert!(page.contains("x-evo-signature-256"), "{page}");
    assert!(page.contains("(present, not shown)"), "{page}");
    let tag = signature.trim_start_matches("sha256=");
    for (path, page) in [
        ("/", get(&siem, "/").await.2),
        ("/_mock/ui/deliveries/1", page),
        (
            "/_mock/ui/deliveries/2",
            get(&siem, "/_mock/ui/deliveries/2").await.2,
        ),
    ] {
        assert!(!page.contains(SECRET), "secret in {path}");
        assert!(!page.contains(tag), "signature in {path}");
    }

    for missing in ["0", "3", "x", "-1"] {
        let (status, _, page) = get(&siem, &format!("/_mock/ui/deliveries/{missing}")).await;
        assert_eq!(status, 404, "{missing}");
        assert!(page.contains("No such delivery"), "{page}");
    }
    let (status, headers, script) = get(&siem, "/_mock/ui/live.js").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert!(script.contains("new EventSource"), "{script}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answered_by_a_fault_lists_its_events_as_not_recorded() {
    let siem = start().await;
    siem.set_faults(vec![Rule {
        when: When::First(1),
        action: Action::Status {
            status: 503,
            retry_after: None,
        },
    }])
    .unwrap();
    let events = [event("ana")];
    let uuid = events[0].split("\"uuid\":\"").nth(1).unwrap()[..36].to_owned();
    assert_eq!(deliver(&siem, "d-1", &events).await.0, 503);
    let (_, _, page) = get(&siem, "/").await;
    let row = page.split("<tr ").find(|r| r.contains("d-1")).unwrap();
    assert!(row.contains("data-verdict=\"fault\""), "{row}");
    assert!(row.contains("status 503"), "{row}");
    let (_, _, page) = get(&siem, "/_mock/ui/deliveries/1").await;
    assert!(page.contains(&uuid), "{page}");
    assert!(page.contains("Not recorded"), "{page}");
    // Once it arrives in another delivery, the first one shows it too.
    assert_eq!(deliver(&siem, "d-1", &events).await.0, 200);
    let (_, _, page) = get(&siem, "/_mock/ui/deliveries/1").await;
    assert!(!page.contains("Not recorded"), "{page}");
    assert!(page.contains("&quot;uuid&quot;"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_form_sets_shows_and_clears_rules() {
    let siem = start().await;
    let answer = post_form(
        &siem,
        "/_mock/ui/faults",
        "count=1&action=status&status=503&retry_after=2&delay_ms=800&mode=replace",
    )
    .await;
    assert_eq!(answer.status().as_u16(), 303);
    assert_eq!(answer.headers()["location"], "/");
    let fail = Rule {
        when: When::First(1),
        action: Action::Status {
            status: 503,
            retry_after: Some(2),
        },
    };
    assert_eq!(siem.fault_rules(), std::slice::from_ref(&fail));
    let (_, _, page) = get(&siem, "/").await;
    assert!(
        page.contains("<li>the first request: answer 503 with Retry-After: 2</li>"),
        "{page}"
    );
    assert!(page.contains("0 requests counted"), "{page}");

    // The rule acts on the next delivery, then lets the following one through.
    assert_eq!(deliver(&siem, "d-1", &[event("ana")]).await.0, 503);
    assert_eq!(deliver(&siem, "d-2", &[event("ana")]).await.0, 200);
    let (_, _, page) = get(&siem, "/").await;
    assert!(page.contains("2 requests counted"), "{page}");

    // Adding keeps the rules in force, in order.
    let answer = post_form(
        &siem,
        "/_mock/ui/faults",
        "count=&action=drop&status=503&mode=add",
    )
    .await;
    assert_eq!(answer.status().as_u16(), 303);
    let drop = Rule {
        when: When::Always,
        action: Action::Drop,
    };
    assert_eq!(siem.fault_rules(), [fail, drop]);
    let (_, _, page) = get(&siem, "/").await;
    assert!(
        page.contains("<li>every request: close the connection without an answer</li>"),
        "{page}"
    );

    // Nonsense is a 400 that says why, and changes nothing.
    let answer = post_form(&siem, "/_mock/ui/faults", "count=1&action=status&status=42").await;
    assert_eq!(answer.status().as_u16(), 400);
    let page = answer.text().await.unwrap();
    assert!(
        page.contains("status must be a whole number from 100 to 599"),
        "{page}"
    );
    let answer = post_form(&siem, "/_mock/ui/faults", "action=%3Cscript%3E").await;
    assert_eq!(answer.status().as_u16(), 400);
    assert_eq!(siem.fault_rules().len(), 2);
    // So is a post that is not a form, and a form posted from another site.
    let answer = client()
        .post(format!("http://{}/_mock/ui/faults", siem.addr()))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 415);
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        for path in [
            "/_mock/ui/faults",
            "/_mock/ui/faults/clear",
            "/_mock/ui/records/clear",
        ] {
            let answer = client()
                .post(format!("http://{}{path}", siem.addr()))
                .header("content-type", "application/x-www-form-urlencoded")
                .header(name, value)
                .body("action=drop")
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status().as_u16(), 403, "{path} {name}");
        }
    }
    assert_eq!(siem.fault_rules().len(), 2);
    assert_eq!(siem.stats().deliveries, 2);

    let answer = post_form(&siem, "/_mock/ui/faults/clear", "").await;
    assert_eq!(answer.status().as_u16(), 303);
    assert!(siem.fault_rules().is_empty());
    let (_, _, page) = get(&siem, "/").await;
    assert!(page.contains("None: every request is verified"), "{page}");

    let answer = post_form(&siem, "/_mock/ui/records/clear", "").await;
    assert_eq!(answer.status().as_u16(), 303);
    assert_eq!(siem.stats().deliveries, 0);
    let (_, _, page) = get(&siem, "/").await;
    assert!(page.contains("No delivery yet"), "{page}");
}

/// Reads the stream until a whole `live` event contains `needle`; returns that event's data.
async fn next_live_with(
    response: &mut reqwest::Response,
    buffer: &mut String,
    needle: &str,
) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if event.starts_with("event: live\n") {
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                    .collect();
                let data = data.join("\n");
                if data.contains(needle) {
                    return data;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("no live event with {needle:?}; got {buffer:?}"))
            .unwrap()
            .expect("the stream must not end");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_pushes_the_live_part_on_every_change() {
    let siem = start().await;
    let mut stream = reqwest::Client::new()
        .get(format!("http://{}/_mock/ui/stream", siem.addr()))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    let first = next_live_with(&mut stream, &mut buffer, "No delivery yet").await;
    assert!(first.contains("id=\"stats\""), "{first}");
    assert!(!first.contains("<html"), "only the live part: {first}");

    let id = uuid::Uuid::new_v4().to_string();
    assert_eq!(deliver(&siem, &id, &[event(XSS)]).await.0, 200);
    let data = next_live_with(&mut stream, &mut buffer, &id).await;
    assert!(data.contains("data-verdict=\"accepted\""), "{data}");

    siem.set_faults(vec![Rule {
        when: When::Nth(3),
        action: Action::Reset,
    }])
    .unwrap();
    next_live_with(
        &mut stream,
        &mut buffer,
        "request #3: reset the connection mid-request",
    )
    .await;
    siem.clear_records();
    next_live_with(&mut stream, &mut buffer, "No delivery yet").await;
}
