//! `cargo xtask fuzz`: the coverage-guided fuzz targets of `fuzz/`, run with AFL++ through
//! cargo-afl on the stable toolchain.
//!
//! 1. Makes sure cargo-afl is there: installs it (`cargo install cargo-afl --locked`) when it is
//!    missing and builds AFL++ for this toolchain (`cargo afl config --build`) when that was not
//!    done, printing each command first.
//! 2. Builds the targets (`cargo afl build --release --features afl` in `fuzz/`), niced.
//! 3. For each target (`--target NAME`: only that one), writes a seed corpus from `fixtures/`
//!    and the example configurations, then runs `afl-fuzz` on it for `--minutes N` (default 10)
//!    with `AFL_NO_UI=1`, one target at a time, niced, printing progress every minute.
//! 4. Prints, per target: the time, executions, executions per second, corpus size, edges found
//!    and AFL++'s `bitmap_cvg`, crashes and hangs. Each crashing input is copied to
//!    `fixtures/fuzz/<target>/crash-<hash>`, and the task fails.
//!
//! `--setup` stops after step 2. A run's files are in `fuzz/target/runs/<target>/` (`in/`,
//! `out/default/{fuzzer_stats,queue,crashes,hangs}`, `afl.log`).

use crate::{cargo, project_root};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The targets, in the order they run; each is `fuzz/src/bin/<name>.rs`.
const TARGETS: &[&str] = &[
    "signature_header",
    "verify",
    "standard_webhooks",
    "ingest",
    "retry_after",
    "config",
];

/// The secret the `verify` target signs with (`SECRET` in `fuzz/src/lib.rs`): seeds that carry
/// the right signature reach the checks behind it at once.
const VERIFY_SECRET: &str = "fuzz-signing-secret";

/// The file the `config` target lets an input name for a secret (`PLANTED_FILE`).
const PLANTED_FILE: &str = "/tmp/evo-siem-fuzz-planted-secret";

struct Options {
    minutes: f64,
    targets: Vec<&'static str>,
    setup_only: bool,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        minutes: 10.0,
        targets: TARGETS.to_vec(),
        setup_only: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--minutes" => {
                options.minutes = value()?.parse().context("--minutes")?;
                if options.minutes.is_nan() || options.minutes <= 0.0 {
                    bail!("--minutes must be positive");
                }
            }
            "--target" => {
                let name = value()?;
                let Some(known) = TARGETS.iter().find(|t| *t == name) else {
                    bail!("unknown target {name:?}; the targets are {TARGETS:?}");
                };
                options.targets = vec![known];
            }
            "--setup" => options.setup_only = true,
            other => {
                bail!("unknown option {other:?}: use --minutes N, --target NAME, --setup")
            }
        }
    }
    Ok(options)
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let options = parse(args)?;
    let root = project_root();
    let fuzz_dir = root.join("fuzz");
    ensure_cargo_afl()?;
    let status = niced_cargo()
        .current_dir(&fuzz_dir)
        .args(["afl", "build", "--release", "--features", "afl"])
        .status()
        .context("cannot run cargo afl build")?;
    if !status.success() {
        bail!("cargo afl build failed: {status}");
    }
    if options.setup_only {
        println!("cargo-afl is ready and the targets are built in fuzz/target/release");
        return Ok(());
    }
    let mut rows = Vec::new();
    for target in &options.targets {
        rows.push(fuzz_one(&root, target, options.minutes)?);
    }
    println!("\n== fuzzing: AFL++ through cargo-afl, one target at a time ==");
    println!(
        "| target | minutes | execs | execs/s | corpus | edges found | bitmap_cvg | crashes | hangs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {:.1} | {} | {:.0} | {} | {} | {} | {} | {} |",
            row.target,
            row.seconds as f64 / 60.0,
            row.execs,
            row.execs as f64 / row.seconds.max(1) as f64,
            row.corpus,
            row.edges,
            row.bitmap_cvg,
            row.crashes.len(),
            row.hangs,
        );
    }
    let crashes: Vec<&PathBuf> = rows.iter().flat_map(|r| &r.crashes).collect();
    if !crashes.is_empty() {
        println!("\ncrashing inputs, saved as fixtures:");
        for crash in &crashes {
            println!("  {}", crash.display());
        }
        println!(
            "replay one: cargo run --manifest-path fuzz/Cargo.toml --bin replay -- TARGET FILE"
        );
        bail!("{} crashing input(s)", crashes.len());
    }
    Ok(())
}

/// `nice -n 10 cargo`: the machine is shared, and fuzzing would take every cycle it is given.
fn niced_cargo() -> Command {
    let mut command = Command::new("nice");
    command
        .args(["-n", "10"])
        .arg(cargo().get_program())
        .env_remove("RUSTFLAGS");
    command
}

/// Installs cargo-afl and builds AFL++ when either is missing, printing what it does.
fn ensure_cargo_afl() -> anyhow::Result<()> {
    crate::ensure_cargo_tool("afl", "cargo-afl")?;
    // AFL++ itself (afl-fuzz and the runtime) is built once per toolchain. `config --build`
    // refuses, and says so, when it is there already.
    let probe = cargo()
        .args(["afl", "config", "--build"])
        .stdin(Stdio::null())
        .output()
        .context("cannot run cargo afl config")?;
    let said = String::from_utf8_lossy(&probe.stderr).into_owned()
        + &String::from_utf8_lossy(&probe.stdout);
    if probe.status.success() {
        println!("AFL++ built for this toolchain (`cargo afl config --build`)");
    } else if !said.contains("already built") {
        bail!("cargo afl config --build failed: {}\n{said}", probe.status);
    }
    Ok(())
}

/// One target's figures, from AFL++'s `fuzzer_stats`.
struct Row {
    target: &'static str,
    seconds: u64,
    execs: u64,
    corpus: u64,
    edges: String,
    bitmap_cvg: String,
    hangs: u64,
    /// The crashing inputs, as copied into `fixtures/fuzz/<target>/`.
    crashes: Vec<PathBuf>,
}

fn fuzz_one(root: &Path, target: &'static str, minutes: f64) -> anyhow::Result<Row> {
    let run = root.join("fuzz/target/runs").join(target);
    let (input, output) = (run.join("in"), run.join("out"));
    // A fresh run each time, so that the figures are this run's.
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&input)?;
    let seeds = seeds(root, target)?;
    if seeds.is_empty() {
        bail!("no seeds for {target}");
    }
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(input.join(format!("seed-{i:03}")), seed)?;
    }
    // AFL++ skips a crashing seed with a warning; here it fails the run. The instrumented
    // binary, outside afl-fuzz, runs its body once on standard input.
    let binary = root.join("fuzz/target/release").join(target);
    for entry in std::fs::read_dir(&input)?.flatten() {
        let status = Command::new(&binary)
            .stdin(std::fs::File::open(entry.path())?)
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        if !status.success() {
            let saved = save_input(root, target, &std::fs::read(entry.path())?)?;
            bail!(
                "{target}: the seed {} fails ({status}); saved as {}",
                entry.path().display(),
                saved.display()
            );
        }
    }
    let dictionary = dictionary(target);
    let dict_path = run.join("dictionary");
    if !dictionary.is_empty() {
        let lines: Vec<String> = dictionary
            .iter()
            .map(|word| format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        std::fs::write(&dict_path, lines.join("\n") + "\n")?;
    }
    let seconds = (minutes * 60.0).round().max(1.0) as u64;
    println!(
        "== {target}: {} seeds, {seconds} s (log: {})",
        seeds.len(),
        run.join("afl.log").display()
    );
    let log = std::fs::File::create(run.join("afl.log"))?;
    let mut command = niced_cargo();
    command
        .current_dir(root.join("fuzz"))
        .args(["afl", "fuzz", "-i"])
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .args(["-V", &seconds.to_string()]);
    if !dictionary.is_empty() {
        command.arg("-x").arg(&dict_path);
    }
    command
        .arg(&binary)
        .env("AFL_NO_UI", "1")
        // Shared machines: no CPU governor check, no core binding, no core-pattern demand.
        .env("AFL_SKIP_CPUFREQ", "1")
        .env("AFL_NO_AFFINITY", "1")
        .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let started = Instant::now();
    let mut child = command.spawn().context("cannot run cargo afl fuzz")?;
    let stats_file = output.join("default/fuzzer_stats");
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_secs(60));
        if let Ok(stats) = read_stats(&stats_file) {
            println!(
                "   {target} {:>4} s: {} execs, corpus {}, edges {}, crashes {}",
                started.elapsed().as_secs(),
                stats.get("execs_done").map_or("?", String::as_str),
                stats.get("corpus_count").map_or("?", String::as_str),
                stats.get("edges_found").map_or("?", String::as_str),
                stats.get("saved_crashes").map_or("?", String::as_str),
            );
        }
    };
    let stats = read_stats(&stats_file).with_context(|| {
        format!(
            "afl-fuzz ({status}) left no fuzzer_stats; see {}",
            run.join("afl.log").display()
        )
    })?;
    let number = |key: &str| {
        stats
            .get(key)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let crashes = save_crashes(root, target, &output.join("default/crashes"))?;
    let total_edges = stats.get("total_edges").cloned().unwrap_or_default();
    Ok(Row {
        target,
        seconds: number("run_time").max(1),
        execs: number("execs_done"),
        corpus: number("corpus_count"),
        edges: format!("{} / {total_edges}", number("edges_found")),
        bitmap_cvg: stats.get("bitmap_cvg").cloned().unwrap_or_default(),
        hangs: number("saved_hangs"),
        crashes,
    })
}

/// AFL++'s `fuzzer_stats`: `key : value` lines.
fn read_stats(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// Copies each crashing input to `fixtures/fuzz/<target>/` ([`save_input`]).
fn save_crashes(root: &Path, target: &str, crashes: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(crashes) else {
        return Ok(Vec::new());
    };
    let mut saved = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with("id:") {
            continue; // AFL++'s README.txt
        }
        saved.push(save_input(root, target, &std::fs::read(entry.path())?)?);
    }
    Ok(saved)
}

/// Saves a failing input as `fixtures/fuzz/<target>/crash-<FNV-1a of its bytes>`.
fn save_input(root: &Path, target: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let dir = root.join("fixtures/fuzz").join(target);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("crash-{hash:016x}"));
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// The seed corpus of `target`, from `fixtures/` and the example configurations.
fn seeds(root: &Path, target: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let fixtures = root.join("fixtures");
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    match target {
        "signature_header" => {
            let vectors: serde_json::Value =
                serde_json::from_slice(&std::fs::read(fixtures.join("signatures.json"))?)?;
            for v in vectors["vectors"].as_array().into_iter().flatten() {
                if let Some(expected) = v["expected"].as_str() {
                    seeds.push(expected.as_bytes().to_vec());
                    seeds.push(
                        expected
                            .to_ascii_uppercase()
                            .replace("SHA256=", "sha256=")
                            .into(),
                    );
                }
            }
            for v in vectors["verification"].as_array().into_iter().flatten() {
                if let Some(header) = v["header"].as_str() {
                    seeds.push(header.as_bytes().to_vec());
                }
            }
        }
        "verify" => {
            let secret = evo_siem_protocol::Secret::new(VERIFY_SECRET);
            for body in payloads(&fixtures)? {
                // Flags 0 (the body's own clock), a right signature, then the body; and one
                // with an empty header, which the signature check refuses.
                let header = evo_siem_protocol::sign(&secret, &body);
                let mut signed = vec![0, header.len() as u8];
                signed.extend_from_slice(header.as_bytes());
                signed.extend_from_slice(&body);
                seeds.push(signed);
                let mut unsigned = vec![0, 0];
                unsigned.extend_from_slice(&body);
                seeds.push(unsigned);
            }
        }
        "standard_webhooks" => {
            // Flags 0x08: the target adds the right `v1` entry for this id and its clock, so
            // the checks behind the signature are reached at once; then the fixtures' own
            // headers (another secret: refused, but the parsers see real values).
            for body in payloads(&fixtures)? {
                let mut seed = vec![0x08, 5, 0, 0];
                seed.extend_from_slice(b"msg_1");
                seed.extend_from_slice(&body);
                seeds.push(seed);
            }
            let vectors: serde_json::Value =
                serde_json::from_slice(&std::fs::read(fixtures.join("signatures.json"))?)?;
            let cases = vectors["standard_webhooks"]["verification"].as_array();
            for case in cases.into_iter().flatten() {
                let field = |name: &str| case[name].as_str().unwrap_or("").as_bytes().to_vec();
                let (id, timestamp, header) = (field("id"), field("timestamp"), field("header"));
                let (Ok(a), Ok(b), Ok(c)) = (
                    u8::try_from(id.len()),
                    u8::try_from(timestamp.len()),
                    u8::try_from(header.len()),
                ) else {
                    continue;
                };
                let mut seed = vec![0, a, b, c];
                for part in [id, timestamp, header, field("body")] {
                    seed.extend_from_slice(&part);
                }
                seeds.push(seed);
            }
        }
        "ingest" => {
            for body in payloads(&fixtures)? {
                let Ok(batch) = evo_siem_protocol::parse_batch(&body) else {
                    continue;
                };
                let events: Vec<&str> = batch.events.iter().filter_map(|e| e.raw_json()).collect();
                seeds.push(format!("[{}]", events.join(",")).into_bytes());
                let lines: Vec<String> = events.iter().map(|e| e.replace('\n', " ")).collect();
                seeds.push((lines.join("\n") + "\n").into_bytes());
            }
        }
        "retry_after" => {
            for value in [
                "120",
                "0",
                " 7 ",
                "18446744073709551615",
                "18446744073709551616",
                "-5",
                "1.5",
                "",
                "soon",
                "Wed, 21 Oct 2015 07:28:00 GMT",
                "Sun, 06 Nov 1994 08:49:37 GMT",
                "Sunday, 06-Nov-94 08:49:37 GMT",
                "Sun Nov  6 08:49:37 1994",
                "Fri, 31 Dec 9999 23:59:59 GMT",
                "Thu, 01 Jan 1970 00:00:00 GMT",
            ] {
                seeds.push(value.as_bytes().to_vec());
            }
        }
        "config" => seeds = config_seeds(root)?,
        other => bail!("no seeds for {other}"),
    }
    seeds.sort();
    seeds.dedup();
    Ok(seeds)
}

/// Every body of `fixtures/payloads/{valid,invalid}` (not the `.expected.json` files).
fn payloads(fixtures: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut bodies = Vec::new();
    for dir in ["valid", "invalid"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures.join("payloads").join(dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.to_string_lossy().ends_with(".expected.json"))
            .collect();
        files.sort();
        for file in files {
            bodies.push(std::fs::read(file)?);
        }
    }
    Ok(bodies)
}

/// The sender configurations the repository shows: `examples/*.toml`, the TOML blocks with an
/// `[[integration]]` of the READMEs and of the sender's `service/config.rs`, and one that uses
/// every secret form the target checks (a planted file, a literal header value).
fn config_seeds(root: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(root.join("examples"))?.flatten() {
        let text = std::fs::read_to_string(entry.path())?;
        if text.contains("[[integration]]") {
            seeds.push(text.into_bytes());
        }
    }
    for file in ["README.md", "crates/sender/README.md"] {
        let text = std::fs::read_to_string(root.join(file))?;
        seeds.extend(toml_blocks(text.lines()));
    }
    let module = std::fs::read_to_string(root.join("crates/sender/src/service/config.rs"))?;
    let doc = module
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        });
    seeds.extend(toml_blocks(doc));
    seeds.push(
        format!(
            "listen = \"127.0.0.1:7700\"\ndata_dir = \"d\"\ningest_token_file = \"{PLANTED_FILE}\"\n\
             [secrets]\nkey_env = \"EVO_SIEM_SECRETS_KEY\"\n\
             [spool]\nbackend = \"postgres\"\nurl_env = \"EVO_SIEM_SPOOL_URL\"\n\
             [[integration]]\ntenant = \"acme\"\nwebhook_url = \"https://siem.example.com/evo\"\n\
             signing_secret_file = \"{PLANTED_FILE}\"\n\
             headers = {{ Authorization = \"Splunk 0123456789abcdef\", X-Key = {{ file = \"{PLANTED_FILE}\" }}, X-Env = {{ env = \"ACME_SIEM_AUTH\" }} }}\n"
        )
        .into_bytes(),
    );
    Ok(seeds)
}

/// The ```toml blocks of a Markdown text that hold an `[[integration]]` table.
fn toml_blocks<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in lines {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                if block.contains("[[integration]]") {
                    blocks.push(std::mem::take(block).into_bytes());
                }
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// Tokens AFL++ splices into inputs: the keys and words of each format, which random bit flips
/// would take long to spell.
fn dictionary(target: &str) -> Vec<&'static str> {
    let json = [
        "\"schema_version\"",
        "\"events\"",
        "\"count\"",
        "\"generated_at\"",
        "\"event_type\"",
        "\"table\"",
        "\"timestamp\"",
        "\"data\"",
        "\"uuid\"",
        "\"action\"",
        "\"status\"",
        "\"actor\"",
        "\"origin\"",
        "\"target\"",
        "\"kind\"",
        "\"name\"",
        "\"hostname\"",
        "\"ipaddr\"",
        "\"ts\"",
        "\"created_at\"",
        "\"1\"",
        "\\u0000",
        "\\ud83d\\ude00",
        "9223372036854775807",
        "-9223372036854775808",
        "18446744073709551616",
        "1e400",
        "\"2024-01-15T10:30:05.123Z\"",
        "null",
        "true",
    ];
    match target {
        "verify" | "ingest" => json.to_vec(),
        "signature_header" => vec!["sha256=", "SHA256=", "0123456789abcdef", "ABCDEF"],
        "standard_webhooks" => {
            let mut words = json.to_vec();
            words.extend(["v1,", "v1a,", "v2,", " ", "=", "+/", "1705314605", "msg_"]);
            words
        }
        "retry_after" => vec![
            "GMT", "Mon, ", "Sunday, ", "Jan", "Feb", "Dec", " 1994 ", " 9999 ", "00:00:00",
            "23:59:60",
        ],
        "config" => vec![
            "listen",
            "data_dir",
            "ingest_token_env",
            "ingest_token_file",
            "allow_private_targets",
            "backlog_max_events",
            "backlog_max_bytes",
            "[delivery]",
            "[spool]",
            "[listener]",
            "[secrets]",
            "[metrics]",
            "[[integration]]",
            "tenant",
            "webhook_url",
            "signing_secret_env",
            "signing_secret_file",
            "headers",
            "excluded_actions",
            "max_batch_events",
            "max_batch_bytes",
            "linger_ms",
            "key_env",
            "key_file",
            "backend",
            "\"postgres\"",
            "url_env",
            "url_file",
            "pool_size",
            "lease_ttl_ms",
            "max_staleness_ms",
            "retry_floor_ms",
            "retry_base_ms",
            "retry_cap_ms",
            "connect_timeout_ms",
            "attempt_timeout_ms",
            "max_connections",
            "max_tenant_series",
            "{ env = \"ACME_SIEM_AUTH\" }",
            "{ file = \"/tmp/evo-siem-fuzz-planted-secret\" }",
            "\"EVO_SIEM_SECRETS_KEY\"",
            "\"https://siem.example.com/evo\"",
            "18446744073709551615",
        ],
        _ => Vec::new(),
    }
}
