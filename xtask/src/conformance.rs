//! `cargo xtask conformance`: both conformance suites, one summary table.
//!
//! 1. The sender suite with the sender in process (`--cases N`, default 64), then with the sender
//!    as a child process that restarts are SIGKILL to (half as many cases), then as three
//!    instances sharing one PostgreSQL spool, one of them SIGKILLed and restarted in the cases
//!    that restart (half as many cases; `scripts/services.sh` makes sure PostgreSQL is up).
//! 2. The receiver suite against the receiver SDK's example (`print_events`) and against the
//!    mock SIEM, each started here on a free loopback port with a random secret.
//!
//! Exits non-zero when any check fails. `--release` builds with optimizations first.

use crate::{cargo, project_root};
use anyhow::{Context, bail};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Options {
    cases: u32,
    seed: u64,
    release: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        cases: 64,
        seed: 0,
        release: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--cases" => options.cases = value()?.parse().context("--cases")?,
            "--seed" => options.seed = value()?.parse().context("--seed")?,
            "--release" => options.release = true,
            other => bail!("unknown option {other:?}: use --cases N, --seed S, --release"),
        }
    }
    Ok(options)
}

/// One line of the summary.
#[derive(Default)]
struct Row {
    suite: String,
    cases: Option<u64>,
    passed: u64,
    warnings: u64,
    failed: u64,
    faults: Option<u64>,
    duplicates: Option<u64>,
    seconds: f64,
    failures: Vec<String>,
    /// Measured figures printed under the table (the sender suite's clock-skew scenario).
    notes: Vec<String>,
}

/// A child process killed when dropped, so that a failing step leaves nothing running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let options = parse(args)?;
    let root = project_root();
    let profile = if options.release { "release" } else { "debug" };
    let mut build = cargo();
    build.current_dir(&root).args([
        "build",
        "-p",
        "evo-siem",
        "--bin",
        "evo-siem",
        "-p",
        "evo-siem-receiver",
        "--example",
        "print_events",
    ]);
    if options.release {
        build.arg("--release");
    }
    let status = build.status().context("cannot run cargo build")?;
    if !status.success() {
        bail!("cargo build failed: {status}");
    }
    let target = target_dir(&root).join(profile);
    let bin = target.join("evo-siem");
    let example = target.join("examples/print_events");

    let cases = options.cases.to_string();
    let child_cases = (options.cases / 2).max(1).to_string();
    let seed = options.seed.to_string();
    let rows = vec![
        sender_suite(
            &bin,
            "sender, in process",
            &["--cases", &cases, "--seed", &seed],
        )?,
        sender_suite(
            &bin,
            "sender, child + SIGKILL",
            &[
                "--cases",
                &child_cases,
                "--seed",
                &seed,
                "--process",
                "child",
            ],
        )?,
        {
            let status = Command::new("bash")
                .arg(root.join("scripts/services.sh"))
                .status()
                .context("cannot run scripts/services.sh")?;
            if !status.success() {
                bail!("scripts/services.sh could not start PostgreSQL: {status}");
            }
            sender_suite(
                &bin,
                "sender, 3 instances, PostgreSQL",
                &[
                    "--cases",
                    &child_cases,
                    "--seed",
                    &seed,
                    "--process",
                    "cluster",
                    "--instances",
                    "3",
                ],
            )?
        },
        receiver_suite(&bin, "receiver, SDK example", |addr, secret| {
            let mut command = Command::new(&example);
            command
                .env("EVO_SIEM_SECRET", secret)
                .env("EVO_SIEM_LISTEN", addr.to_string());
            command
        })?,
        receiver_suite(&bin, "receiver, mock SIEM", |addr, secret| {
            let mut command = Command::new(&bin);
            command
                .args(["mock-siem", "--listen", &addr.to_string()])
                .args(["--secret-env", "EVO_SIEM_CONFORMANCE_SECRET"])
                .env("EVO_SIEM_CONFORMANCE_SECRET", secret);
            command
        })?,
    ];
    print!("{}", table(&rows));
    let failed: u64 = rows.iter().map(|r| r.failed).sum();
    if failed > 0 {
        bail!("{failed} conformance checks failed");
    }
    Ok(())
}

/// `CARGO_TARGET_DIR` when set, else `target/` in the repository.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn sender_suite(bin: &Path, name: &str, args: &[&str]) -> anyhow::Result<Row> {
    eprintln!("== {name}");
    let started = Instant::now();
    let output = Command::new(bin)
        .args(["conformance", "sender", "--format", "json"])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the sender suite")?;
    let report: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("the sender suite did not report ({})", output.status))?;
    let totals = &report["totals"];
    let count = |key: &str| totals[key].as_u64().unwrap_or_default();
    let mut row = Row {
        suite: name.to_owned(),
        cases: Some(count("cases")),
        passed: count("checks_passed"),
        faults: Some(count("faults_injected")),
        duplicates: Some(count("duplicates")),
        seconds: started.elapsed().as_secs_f64(),
        ..Row::default()
    };
    if let Some(skew) = report["clock_skew"].as_object() {
        let ms = |key: &str| {
            skew.get(key)
                .and_then(Value::as_i64)
                .map_or_else(|| "never".to_owned(), |ms| format!("{ms} ms"))
        };
        let n = |key: &str| skew.get(key).and_then(Value::as_u64).unwrap_or_default();
        row.notes.push(format!(
            "clock skew ({name}): SIEM clock {}s off for {} ms: {} deliveries refused (401), {} after; probed every {} (median); lost {} of {}; first 2xx {} and every event {} after the skew",
            n("skew_s"),
            n("window_ms"),
            n("refused"),
            n("refused_after"),
            ms("probe_interval_ms"),
            n("lost"),
            n("events"),
            ms("first_accepted_after_ms"),
            ms("recovered_after_ms"),
        ));
    }
    if let Some(failure) = report["failure"].as_object() {
        row.failed = 1;
        row.failures.push(format!(
            "{name}: {}\nminimal case (replay with --seed {}): {}",
            failure["reason"].as_str().unwrap_or_default(),
            report["seed"],
            failure["case"].as_str().unwrap_or_default()
        ));
    }
    Ok(row)
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A secret nobody chose: the standard library's randomly keyed hasher, twice.
fn random_secret() -> String {
    use std::hash::{BuildHasher, RandomState};
    let word = || RandomState::new().hash_one(Instant::now());
    format!("whsec-{:016x}{:016x}", word(), word())
}

fn receiver_suite(
    bin: &Path,
    name: &str,
    command: impl FnOnce(SocketAddr, &str) -> Command,
) -> anyhow::Result<Row> {
    eprintln!("== {name}");
    let started = Instant::now();
    let addr = free_addr()?;
    let secret = random_secret();
    let mut command = command(addr, &secret);
    let server = Running(
        command
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start the receiver for {name}"))?,
    );
    let up = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if up.elapsed() > Duration::from_secs(20) {
            bail!("{name}: the receiver did not listen on {addr} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = Command::new(bin)
        .args(["conformance", "receiver", "--format", "json"])
        .args(["--url", &format!("http://{addr}/webhook")])
        .args(["--secret-env", "EVO_SIEM_CONFORMANCE_SECRET"])
        .env("EVO_SIEM_CONFORMANCE_SECRET", &secret)
        .stderr(Stdio::null())
        .output()
        .context("cannot run the receiver suite")?;
    drop(server);
    let results: Vec<Value> = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("the receiver suite did not report ({})", output.status))?;
    let mut row = Row {
        suite: name.to_owned(),
        seconds: started.elapsed().as_secs_f64(),
        ..Row::default()
    };
    for result in &results {
        match result["verdict"].as_str() {
            Some("pass") => row.passed += 1,
            Some("warn") => row.warnings += 1,
            _ => {
                row.failed += 1;
                row.failures.push(format!(
                    "{name}: {} (expected {}, got {})",
                    result["name"], result["expect"], result["status"]
                ));
            }
        }
    }
    Ok(row)
}

fn table(rows: &[Row]) -> String {
    let dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut out = format!(
        "\n{:<32} {:>6} {:>7} {:>5} {:>6} {:>7} {:>10} {:>7}\n",
        "suite", "cases", "passed", "warn", "failed", "faults", "duplicates", "seconds"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<32} {:>6} {:>7} {:>5} {:>6} {:>7} {:>10} {:>7.1}\n",
            r.suite,
            dash(r.cases),
            r.passed,
            r.warnings,
            r.failed,
            dash(r.faults),
            dash(r.duplicates),
            r.seconds
        ));
    }
    for note in rows.iter().flat_map(|r| &r.notes) {
        out.push_str(&format!("{note}\n"));
    }
    for failure in rows.iter().flat_map(|r| &r.failures) {
        out.push_str(&format!("\nFAIL {failure}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_mistakes_are_refused() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let o = parse(&args(&["--cases", "8", "--seed", "3", "--release"])).unwrap();
        assert_eq!((o.cases, o.seed, o.release), (8, 3, true));
        assert_eq!(parse(&[]).unwrap().cases, 64);
        assert!(parse(&args(&["--cases"])).is_err());
        assert!(parse(&args(&["--cases", "many"])).is_err());
        assert!(parse(&args(&["--fast"])).is_err());
    }

    #[test]
    fn a_failure_shows_in_the_table() {
        let rows = [Row {
            suite: "receiver, x".into(),
            passed: 13,
            failed: 1,
            failures: vec!["receiver, x: \"stale\"".into()],
            ..Row::default()
        }];
        let text = table(&rows);
        assert!(text.contains("receiver, x"), "{text}");
        assert!(text.contains("FAIL receiver, x: \"stale\""), "{text}");
    }
}
