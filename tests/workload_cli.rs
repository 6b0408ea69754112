//! `evo-siem demo`, `generate` and `load` end to end, as a user runs them.

use std::process::{Command, Output, Stdio};

/// Runs `evo-siem` with `args` and `env`; checks that no value from `env` reaches the output.
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
fn the_demo_survives_the_outage_and_passes() {
    let output = run(&["demo", "--rate", "300", "--duration", "3s"], &[]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("verdict: PASS"), "{stdout}");
    assert!(stderr.contains("the SIEM fails: 503"), "{stderr}");
    assert!(stderr.contains("the SIEM is back"), "{stderr}");
    // Not on a terminal: plain status lines, no cursor control.
    assert!(!stderr.contains('\x1b'), "{stderr}");
    // The outage made the sender retry.
    let retried = stdout
        .lines()
        .find(|l| l.contains("retried attempts"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(retried > 0, "{stdout}");
}

#[test]
fn generate_is_reproducible_and_writes_one_file_per_tenant() {
    let args = [
        "generate",
        "--count",
        "5",
        "--seed",
        "7",
        "--start",
        "2026-11-24T10:00:00Z",
    ];
    let first = run(&args, &[]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(first.stdout, run(&args, &[]).stdout);
    let lines: Vec<serde_json::Value> = text(&first.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[0]["data"]["ts"].as_i64().unwrap() > 1 << 53);
    assert!(
        lines[0]["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-24T10:00:00")
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let split = run(
        &[
            "generate",
            "--count",
            "7",
            "--tenants",
            "3",
            "--out-dir",
            out,
        ],
        &[],
    );
    assert!(split.status.success(), "{}", text(&split.stderr));
    let count = |tenant: &str| {
        std::fs::read_to_string(dir.path().join(format!("{tenant}.ndjson")))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(
        (count("acme"), count("globex"), count("initech")),
        (3, 2, 2)
    );

    let refused = run(&["generate", "--count", "7", "--tenants", "3"], &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("--out-dir"));
}

#[test]
fn load_drives_a_real_sender_and_reports() {
    use evo_siem_sender::service::{Config, Sender};
    let token = "load-test-token-1234";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), token).unwrap();
    // The SIEM is a closed loopback port: events queue, which is all a load test of ingest needs.
    let config = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ningest_token_file = {:?}\nallow_private_targets = [\"127.0.0.1/32\"]\n\n[[integration]]\ntenant = \"acme\"\nwebhook_url = \"http://127.0.0.1:9/webhook\"\nexcluded_actions = [\"User login\"]\n",
        dir.path().join("data"),
        dir.path().join("token"),
    );
    let config: Config = toml::from_str(&config).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sender = runtime.block_on(Sender::start(&config)).unwrap();
    let url = format!("http://{}", sender.addr());
    let args = [
        "load",
        "--url",
        &url,
        "--token-env",
        "EVO_TEST_TOKEN",
        "--rate",
        "2000",
        "--duration",
        "1s",
        "--batch",
        "50",
        "--format",
        "json",
    ];
    let output = run(&args, &[("EVO_TEST_TOKEN", token)]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["requests"], 40);
    assert_eq!(report["errors"], serde_json::json!({}));
    let acknowledged = report["accepted"].as_u64().unwrap() + report["excluded"].as_u64().unwrap();
    assert_eq!(acknowledged, 2_000);
    assert!(report["excluded"].as_u64().unwrap() > 0);
    assert_eq!(report["latency"]["count"], 40);

    // A wrong token, from a file: every request refused, nothing acknowledged, exit 1, errors
    // by status.
    std::fs::write(dir.path().join("wrong-token"), "not-the-token\n").unwrap();
    let wrong = dir.path().join("wrong-token");
    let mut from_file = args.to_vec();
    from_file.splice(3..5, ["--token-file", wrong.to_str().unwrap()]);
    let output = run(&from_file, &[]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["errors"]["status 401"], 40);
    runtime.block_on(sender.shutdown());

    let unset = run(
        &[
            "load",
            "--url",
            &url,
            "--token-env",
            "EVO_TEST_UNSET",
            "--rate",
            "1",
            "--duration",
            "1s",
        ],
        &[],
    );
    assert_eq!(unset.status.code(), Some(2));
    assert!(text(&unset.stderr).contains("EVO_TEST_UNSET"));
}
