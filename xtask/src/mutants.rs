//! `cargo xtask mutants [--package NAME] [--file GLOB]... [--cargo-test-arg ARG]... [--jobs N]
//! [--list] [-- TEST-ARGS]`: mutation testing, with cargo-mutants, of the files that carry the
//! product's guarantees.
//!
//! A mutant is the code with one small change (a `<` made `<=`, a function body replaced by
//! `Default::default()`, a `&&` made `||`). A mutant that `cargo test` still passes is code whose
//! behaviour no test pins down. The score is the share of viable mutants (those that build) that
//! the tests catch; the goal is at most 5 % surviving in these files. Too slow for CI (each
//! mutant is an incremental build and a test run of its crate): run it by hand, one crate at a
//! time if need be, and read the survivors in `target/mutants/<crate>/mutants.out/missed.txt`.
//!
//! `--file` narrows a crate's run to some of its files in scope (one group at a time: a crate's
//! whole scope can take an hour); `--cargo-test-arg` is passed to `cargo test` (for example
//! `--lib` and `--tests` to leave the doctests out, which cost about 40 s a mutant), and what
//! follows `--` goes to the test binaries (a filter).
//!
//! cargo-mutants is installed (`cargo install cargo-mutants --locked`) when it is missing.

use crate::{cargo, project_root};
use anyhow::{Context, bail};
use std::path::Path;

/// The files that carry the guarantees, per crate: signatures and the receiver's checks (nothing
/// forged gets in), deduplication (each event handed over once), and the sender's filter,
/// batching, retries, outbound guard and spool writes (nothing lost, nothing excluded sent).
const SCOPE: &[(&str, &[&str])] = &[
    (
        "evo-siem-protocol",
        &[
            "crates/protocol/src/signature.rs",
            "crates/protocol/src/verify.rs",
            "crates/protocol/src/parse.rs",
            "crates/protocol/src/event_id.rs",
        ],
    ),
    (
        "evo-siem-receiver",
        &[
            "crates/receiver/src/dedup/*.rs",
            "crates/receiver/src/verified.rs",
            "crates/receiver/src/receiver.rs",
        ],
    ),
    (
        "evo-siem-sender",
        &[
            "crates/sender/src/filter.rs",
            "crates/sender/src/batcher.rs",
            "crates/sender/src/retry/*.rs",
            "crates/sender/src/guard.rs",
            "crates/sender/src/spool/sqlite/writer.rs",
            "crates/sender/src/spool/postgres/queue.rs",
            "crates/sender/src/spool/postgres/dead_letters.rs",
        ],
    ),
];

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut packages: Vec<&str> = Vec::new();
    let mut jobs = "1".to_owned();
    let mut list = false;
    let mut test_args: Vec<String> = Vec::new();
    let mut only_files: Vec<String> = Vec::new();
    let mut cargo_test_args: Vec<String> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--package" | "-p" => {
                let name = rest.next().context("--package needs a crate name")?;
                let Some((known, _)) = SCOPE.iter().find(|(p, _)| p == name) else {
                    let names: Vec<&str> = SCOPE.iter().map(|(p, _)| *p).collect();
                    bail!("--package {name:?}: one of {names:?}");
                };
                packages.push(known);
            }
            "--jobs" | "-j" => jobs = rest.next().context("--jobs needs a number")?.clone(),
            "--list" => list = true,
            "--file" => only_files.push(rest.next().context("--file needs a path")?.clone()),
            "--cargo-test-arg" => cargo_test_args.push(
                rest.next()
                    .context("--cargo-test-arg needs an argument")?
                    .clone(),
            ),
            other if other.starts_with("--cargo-test-arg=") => {
                cargo_test_args.push(other["--cargo-test-arg=".len()..].to_owned());
            }
            "--" => test_args = rest.by_ref().cloned().collect(),
            other => bail!("unknown argument {other:?}"),
        }
    }
    if packages.is_empty() {
        packages = SCOPE.iter().map(|(p, _)| *p).collect();
    }
    // A file given must be in the scope of the one crate being run, so that the score stays
    // about the files that carry the guarantees.
    if !only_files.is_empty() {
        let [package] = packages[..] else {
            bail!("--file needs exactly one --package");
        };
        let (_, files) = SCOPE.iter().find(|(p, _)| *p == package).expect("known");
        for file in &only_files {
            if !files.iter().any(|glob| in_scope(glob, file)) {
                bail!("--file {file:?} is not in {package}'s scope: {files:?}");
            }
        }
    }
    crate::ensure_cargo_tool("mutants", "cargo-mutants")?;
    let root = project_root();
    let mut summary = Vec::new();
    for package in packages {
        let (_, files) = SCOPE.iter().find(|(p, _)| *p == package).expect("known");
        let out = root.join("target/mutants").join(package);
        std::fs::create_dir_all(&out)?;
        let mut command = cargo();
        command
            .current_dir(&root)
            .args(["mutants", "--package", package, "--jobs", &jobs])
            .arg("--output")
            .arg(&out);
        let chosen: Vec<&str> = if only_files.is_empty() {
            files.to_vec()
        } else {
            only_files.iter().map(String::as_str).collect()
        };
        for file in chosen {
            command.args(["--file", file]);
        }
        for arg in &cargo_test_args {
            command.arg(format!("--cargo-test-arg={arg}"));
        }
        if list {
            command.arg("--list");
        }
        if !test_args.is_empty() {
            command.arg("--").args(&test_args);
        }
        eprintln!("mutants: {package}: {command:?}");
        // cargo-mutants exits non-zero when a mutant survives: the summary says how many.
        let status = command.status().context("cannot run cargo mutants")?;
        if list {
            continue;
        }
        match score(&out.join("mutants.out")) {
            Ok(line) => summary.push(format!("{package}: {line}")),
            Err(err) => summary.push(format!("{package}: no result ({err:#}; exit {status})")),
        }
    }
    for line in &summary {
        println!("mutants: {line}");
    }
    Ok(())
}

/// Whether `file` is matched by `glob`, a path whose last part may be `*.rs`.
fn in_scope(glob: &str, file: &str) -> bool {
    match glob.strip_suffix("*.rs") {
        Some(dir) => file.strip_prefix(dir).is_some_and(|name| {
            !name.contains('/') && name.ends_with(".rs") && name.len() > ".rs".len()
        }),
        None => glob == file,
    }
}

/// The score from cargo-mutants' `outcomes.json`: caught, missed, timeouts and unviable, and
/// the share of viable mutants that survived.
fn score(dir: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(dir.join("outcomes.json"))
        .with_context(|| format!("cannot read {}", dir.join("outcomes.json").display()))?;
    let outcomes: serde_json::Value = serde_json::from_str(&text)?;
    let count = |key: &str| {
        outcomes
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0)
    };
    let (caught, missed, timeout, unviable) = (
        count("caught"),
        count("missed"),
        count("timeout"),
        count("unviable"),
    );
    let viable = caught + missed + timeout;
    let survived = if viable == 0 {
        0.0
    } else {
        100.0 * missed as f64 / viable as f64
    };
    Ok(format!(
        "{caught} caught, {missed} missed, {timeout} timed out, {unviable} unviable: \
         {survived:.1} % of {viable} viable mutants survived (target at most 5 %); \
         survivors in {}",
        dir.join("missed.txt").display()
    ))
}

#[cfg(test)]
mod tests {
    use super::in_scope;

    #[test]
    fn a_file_is_in_scope_when_a_glob_or_a_path_names_it() {
        assert!(in_scope(
            "crates/sender/src/retry/*.rs",
            "crates/sender/src/retry/backoff.rs"
        ));
        assert!(in_scope(
            "crates/sender/src/guard.rs",
            "crates/sender/src/guard.rs"
        ));
        assert!(!in_scope(
            "crates/sender/src/retry/*.rs",
            "crates/sender/src/retry/x/y.rs"
        ));
        assert!(!in_scope(
            "crates/sender/src/retry/*.rs",
            "crates/sender/src/retry/.rs"
        ));
        assert!(!in_scope(
            "crates/sender/src/guard.rs",
            "crates/sender/src/filter.rs"
        ));
    }
}
