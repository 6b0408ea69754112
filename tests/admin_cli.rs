//! `evo-siem send-test` and `evo-siem admin token` as a user runs them.

use std::process::{Command, Output, Stdio};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_evo-siem"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("the binary starts");
    for (_, secret) in env {
        for stream in [&output.stdout, &output.stderr] {
            assert!(
                !String::from_utf8_lossy(stream).contains(secret),
                "secret leaked"
            );
        }
    }
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn send_test_diagnoses_success_a_wrong_secret_and_a_blocked_address() {
    use evo_siem_mock::{MockSiem, MockSiemConfig};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let siem = runtime
        .block_on(MockSiem::start(
            "127.0.0.1:0".parse().unwrap(),
            MockSiemConfig::signed(["the-right-secret-0123"]),
        ))
        .unwrap();
    let url = siem.webhook_url();
    let args = |extra: &[&'static str]| {
        let mut args = vec![
            "send-test",
            "--url",
            url.as_str(),
            "--allow-private",
            "127.0.0.1/32",
            "--secret-env",
            "EVO_TEST_SECRET",
        ];
        args.extend_from_slice(extra);
        args
    };

    let ok = run(&args(&[]), &[("EVO_TEST_SECRET", "the-right-secret-0123")]);
    assert!(ok.status.success(), "{}", text(&ok.stdout));
    assert!(text(&ok.stdout).starts_with("OK: the receiver accepted"));
    let event = &siem.events()[0];
    assert_eq!(event.action, "SIEM webhook test");
    assert!(event.raw.contains(r#""test":true"#));

    let wrong = run(
        &args(&["--format", "json"]),
        &[("EVO_TEST_SECRET", "a-wrong-secret-0123")],
    );
    assert_eq!(wrong.status.code(), Some(1));
    let d: serde_json::Value = serde_json::from_slice(&wrong.stdout).unwrap();
    assert_eq!(
        (d["status"].as_u64(), d["failure"].as_str()),
        (Some(401), Some("http_status"))
    );
    assert!(d["diagnosis"].as_str().unwrap().contains("signature"));

    // Without --allow-private, loopback is blocked before anything is sent.
    let blocked = run(&["send-test", "--url", &url], &[]);
    assert_eq!(blocked.status.code(), Some(1));
    assert!(
        text(&blocked.stdout).contains("blocked"),
        "{}",
        text(&blocked.stdout)
    );
    assert_eq!(siem.stats().deliveries, 2);
}

#[test]
fn admin_tokens_are_created_once_listed_without_secrets_and_revoked() {
    tokens_created_listed_and_revoked("");
}

/// With a PostgreSQL spool the tokens live in the state the instances share.
#[test]
fn admin_tokens_on_a_postgres_spool_are_shared() {
    evo_siem_test_services::postgres().unwrap_or_else(|e| panic!("{e}"));
    let database = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(evo_siem_sender::spool::scratch::ScratchDatabase::create())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("spool-url");
    std::fs::write(&url_file, database.url()).unwrap();
    tokens_created_listed_and_revoked(&format!(
        "[spool]\nbackend = \"postgres\"\nurl_file = {url_file:?}\n"
    ));
    // Stored in the database, not in a data directory: another instance's view sees nothing left.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shared = runtime.block_on(async {
        let spool = evo_siem_sender::spool::PostgresSpool::connect(
            evo_siem_sender::spool::PostgresOptions::new(database.url()),
            Default::default(),
        )
        .await
        .unwrap();
        evo_siem_sender::store::SharedState::on(&spool)
    });
    assert!(runtime.block_on(shared.tokens()).unwrap().is_empty());
}

fn tokens_created_listed_and_revoked(spool: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sender.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ningest_token_env = \"UNUSED\"\n{spool}",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let created = run(
        &[
            "admin",
            "token",
            "create",
            "--config",
            config,
            "--tenant",
            "acme",
            "--permission",
            "integrations.siem.manage",
            "--label",
            "alice",
        ],
        &[],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let token = text(&created.stdout).trim().to_owned();
    assert!(token.starts_with("evo_adm_"));
    // -c, and EVO_SIEM_CONFIG when no flag names the file.
    let list = text(&run(&["admin", "token", "list", "-c", config], &[]).stdout);
    assert!(
        list.contains("acme\tintegrations.siem.manage\talice"),
        "{list}"
    );
    assert!(!list.contains(&token[8..]));
    let id = list.split('\t').next().unwrap();
    assert!(
        run(
            &["admin", "token", "revoke", "--id", id],
            &[("EVO_SIEM_CONFIG", config)]
        )
        .status
        .success()
    );
    assert!(
        text(&run(&["admin", "token", "list"], &[("EVO_SIEM_CONFIG", config)]).stdout).is_empty()
    );
    let unknown = run(
        &[
            "admin",
            "token",
            "create",
            "--config",
            config,
            "--tenant",
            "acme",
            "--permission",
            "integrations.siem.admin",
        ],
        &[],
    );
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("unknown permission"));
}

/// A secret header from a file: it arrives, and it is in neither the arguments nor the output.
#[test]
fn send_test_reads_headers_from_a_file() {
    use evo_siem_mock::{MockSiem, MockSiemConfig};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let siem = runtime
        .block_on(MockSiem::start(
            "127.0.0.1:0".parse().unwrap(),
            MockSiemConfig::unsigned(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("headers");
    std::fs::write(
        &file,
        "# the SIEM's token\nAuthorization: Splunk hdr-s3cret-0123\r\n\nX-Intake: audit\n",
    )
    .unwrap();
    let url = siem.webhook_url();
    let file = file.to_str().unwrap();
    let base = [
        "send-test",
        "--url",
        &url,
        "--allow-private",
        "127.0.0.1/32",
    ];
    let ok = run(&[&base[..], &["--header-file", file]].concat(), &[]);
    assert!(ok.status.success(), "{}", text(&ok.stdout));
    let delivery = &siem.deliveries()[0];
    let header = |name: &str| {
        delivery
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-intake").as_deref(), Some("audit"));
    assert!(header("authorization").is_some(), "{:?}", delivery.headers);
    assert!(!text(&ok.stdout).contains("hdr-s3cret"));

    // A reserved header or a line without a colon is refused, naming the file and line only.
    std::fs::write(dir.path().join("bad"), "Authorization hdr-s3cret-0123\n").unwrap();
    let bad = dir.path().join("bad");
    let refused = run(
        &[&base[..], &["--header-file", bad.to_str().unwrap()]].concat(),
        &[],
    );
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(err.contains("line 1"), "{err}");
    assert!(!err.contains("hdr-s3cret"), "{err}");
    assert_eq!(siem.stats().deliveries, 1);
}
