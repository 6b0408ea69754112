//! End-to-end tests of the `evo-siem` binary: `sign` and `verify`, their exit codes, and that no
//! secret ever reaches the output.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &[u8] = b"Hello, World!";
const GITHUB_SIGNATURE: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

/// Runs `evo-siem` with `args`, the given environment, and `stdin` piped in.
fn run(args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_evo-siem"))
        .args(args)
        .env_remove("EVO_TEST_SECRET")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    // The binary may exit before reading its input (a usage error), closing the pipe.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let output = child.wait_with_output().unwrap();
    for secret in env.iter().map(|(_, v)| *v).filter(|v| !v.is_empty()) {
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(secret), "secret leaked: {text}");
        }
    }
    output
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn body_file(dir: &str, body: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("evo-siem-cli-{dir}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("body.json");
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn sign_matches_githubs_published_vector_from_stdin_and_from_a_file() {
    let env = [("EVO_TEST_SECRET", GITHUB_SECRET)];
    let out = run(
        &["sign", "--secret-env", "EVO_TEST_SECRET"],
        &env,
        GITHUB_BODY,
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), format!("{GITHUB_SIGNATURE}\n"))
    );

    let path = body_file("sign", GITHUB_BODY);
    let out = run(
        &[
            "sign",
            "--secret-env",
            "EVO_TEST_SECRET",
            path.to_str().unwrap(),
        ],
        &env,
        b"",
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), format!("{GITHUB_SIGNATURE}\n"))
    );
}

#[test]
fn verify_accepts_a_valid_signature_and_refuses_a_tampered_body() {
    let env = [("EVO_TEST_SECRET", GITHUB_SECRET)];
    let args = [
        "verify",
        "--secret-env",
        "EVO_TEST_SECRET",
        "--signature",
        GITHUB_SIGNATURE,
    ];
    let out = run(&args, &env, GITHUB_BODY);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "valid\n".to_owned())
    );

    let out = run(&args, &env, b"Hello, World?");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "invalid: signature_mismatch: the signature does not match the body\n"
    );
}

#[test]
fn verify_reports_a_malformed_signature() {
    let env = [("EVO_TEST_SECRET", GITHUB_SECRET)];
    let args = [
        "verify",
        "--secret-env",
        "EVO_TEST_SECRET",
        "--signature",
        "sha1=0123",
    ];
    let out = run(&args, &env, GITHUB_BODY);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("invalid: malformed_signature: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn verify_accepts_either_secret_during_rotation() {
    let env = [
        ("EVO_OLD", "old-secret-1"),
        ("EVO_TEST_SECRET", GITHUB_SECRET),
    ];
    let args = [
        "verify",
        "--secret-env",
        "EVO_OLD",
        "--secret-env",
        "EVO_TEST_SECRET",
        "--signature",
        GITHUB_SIGNATURE,
    ];
    let out = run(&args, &env, GITHUB_BODY);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "valid (secret 2)\n".to_owned())
    );
}

#[test]
fn secret_file_ignores_one_trailing_newline() {
    let path = body_file("secret-file", format!("{GITHUB_SECRET}\r\n").as_bytes());
    let out = run(
        &["sign", "--secret-file", path.to_str().unwrap()],
        &[],
        GITHUB_BODY,
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), format!("{GITHUB_SIGNATURE}\n"))
    );
    assert!(!text(&out.stderr).contains(GITHUB_SECRET));
}

#[test]
fn missing_or_empty_secret_is_a_usage_error_naming_the_variable() {
    let out = run(&["sign", "--secret-env", "EVO_TEST_SECRET"], &[], b"x");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("environment variable EVO_TEST_SECRET"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        &["sign", "--secret-env", "EVO_TEST_SECRET"],
        &[("EVO_TEST_SECRET", "")],
        b"x",
    );
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(2),
            "evo-siem: environment variable EVO_TEST_SECRET is empty\n".to_owned()
        )
    );

    let out = run(&["sign"], &[], b"x");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--secret-env VAR or --secret-file PATH"));
}

#[test]
fn secrets_are_not_accepted_on_the_command_line() {
    let out = run(&["sign", "--secret", "hunter2"], &[], b"x");
    assert_eq!(out.status.code(), Some(2));
}

/// The subcommands `evo-siem --help` lists: each one compiled in (by the package's features) is
/// there, each one left out is not, so a production build (`--no-default-features`) holds only
/// the sender and the admin commands.
#[test]
fn help_lists_exactly_the_subcommands_compiled_in() {
    let out = run(&["--help"], &[], b"");
    assert!(out.status.success());
    let help = text(&out.stdout);
    let listed: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("Options:").next())
        .unwrap_or_else(|| panic!("no command list in\n{help}"))
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    let mut expected = vec!["sender", "send-test", "admin", "sign", "verify", "whsec"];
    let optional = [
        ("demo", cfg!(feature = "demo")),
        ("generate", cfg!(feature = "workload")),
        ("load", cfg!(feature = "workload")),
        ("mock-siem", cfg!(feature = "mock-siem")),
        ("relay", cfg!(feature = "relay")),
        ("conformance", cfg!(feature = "conformance")),
    ];
    expected.extend(optional.iter().filter(|(_, on)| *on).map(|(name, _)| *name));
    let (mut listed, mut expected) = (listed, expected);
    listed.sort_unstable();
    expected.sort_unstable();
    assert_eq!(listed, expected, "{help}");
    for (name, on) in optional {
        if !on {
            let out = run(&[name, "--help"], &[], b"");
            assert_eq!(out.status.code(), Some(2), "{name} is compiled in");
        }
    }
    let mock = run(&["mock-siem", "--help"], &[], b"");
    if cfg!(feature = "mock-siem") {
        let help = text(&mock.stdout);
        assert_eq!(
            help.contains("--redis-url"),
            cfg!(feature = "redis"),
            "{help}"
        );
    }
}

/// Standard Webhooks with the fixtures' vector for the GitHub secret in `whsec_` form: `whsec`
/// prints that form, `sign --scheme standard-webhooks` the three headers, `verify` checks them.
#[test]
fn standard_webhooks_sign_verify_and_the_whsec_form() {
    let vectors: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/signatures.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let vector = &vectors["standard_webhooks"]["vectors"][1];
    let (id, timestamp, body, expected) = (
        vector["id"].as_str().unwrap(),
        vector["timestamp"].as_u64().unwrap().to_string(),
        vector["body"].as_str().unwrap().as_bytes(),
        vector["expected"].as_str().unwrap(),
    );
    let env = [("EVO_TEST_SECRET", GITHUB_SECRET)];

    let out = run(&["whsec", "--secret-env", "EVO_TEST_SECRET"], &[], b"");
    assert_eq!(out.status.code(), Some(2), "no secret given: a usage error");
    let whsec = Command::new(env!("CARGO_BIN_EXE_evo-siem"))
        .args(["whsec", "--secret-env", "EVO_TEST_SECRET"])
        .env("EVO_TEST_SECRET", GITHUB_SECRET)
        .output()
        .unwrap();
    assert_eq!(
        text(&whsec.stdout),
        format!("{}\n", vector["secret"].as_str().unwrap())
    );

    let sw = ["--scheme", "standard-webhooks", "--webhook-id", id];
    let signed = run(
        &[
            &["sign", "--secret-env", "EVO_TEST_SECRET"][..],
            &sw,
            &["--webhook-timestamp", &timestamp],
        ]
        .concat(),
        &env,
        body,
    );
    assert_eq!(
        (signed.status.code(), text(&signed.stdout)),
        (
            Some(0),
            format!(
                "webhook-id: {id}\nwebhook-timestamp: {timestamp}\nwebhook-signature: {expected}\n"
            )
        )
    );

    let verify = |signature: &str, timestamp: &str| {
        run(
            &[
                &[
                    "verify",
                    "--secret-env",
                    "EVO_TEST_SECRET",
                    "--signature",
                    signature,
                ][..],
                &sw,
                &["--webhook-timestamp", timestamp],
            ]
            .concat(),
            &env,
            body,
        )
    };
    let ok = verify(expected, &timestamp);
    assert_eq!(
        (ok.status.code(), text(&ok.stdout)),
        (Some(0), "valid\n".into())
    );
    // The timestamp is signed: another second is another signature.
    let later = (vector["timestamp"].as_u64().unwrap() + 1).to_string();
    let moved = verify(expected, &later);
    assert_eq!(moved.status.code(), Some(1));
    assert!(
        text(&moved.stderr).contains("signature_mismatch"),
        "{}",
        text(&moved.stderr)
    );
}
