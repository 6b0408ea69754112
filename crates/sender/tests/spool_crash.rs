//! Crash safety of the SQLite spool: a child process appends events as fast as it can and prints
//! each one once its append resolved; the parent kills it with SIGKILL at a random moment, reopens
//! the spool, and checks that every acknowledged event is there. Several rounds on one file.
//!
//! Run with the test suite (`cargo test -p evo-siem-sender --test spool_crash`). It has its own
//! `main` because it re-runs its own binary as the child.

use evo_siem_sender::spool::{BacklogLimits, NewEvent, Spool, SqliteSpool};
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "EVO_SIEM_SPOOL_CRASH_CHILD";

/// The child: four writers appending small batches until killed, printing each acknowledged label.
fn child(path: &str, round: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let spool = SqliteSpool::open(path.as_ref(), BacklogLimits::default()).unwrap();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let spool = spool.clone();
                let round = round.to_owned();
                tokio::spawn(async move {
                    for n in 0.. {
                        let labels: Vec<String> =
                            (0..5).map(|i| format!("{round}-{w}-{n}-{i}")).collect();
                        let events = labels
                            .iter()
                            .map(|l| NewEvent {
                                action: "User login".into(),
                                json: format!(r#"{{"label":"{l}"}}"#),
                            })
                            .collect();
                        spool.append("acme", events).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        for label in labels {
                            writeln!(out, "{label}").unwrap();
                        }
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

fn main() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        let round = std::env::var("ROUND").unwrap_or_default();
        child(&path, &round);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.db");
    let mut acknowledged = HashSet::new();
    let mut rng = fastrand::Rng::new();
    for round in 0..6 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, &path)
            .env("ROUND", round.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let deadline = Instant::now() + Duration::from_millis(rng.u64(100..600));
        let mut lines = stdout.lines();
        let mut this_round = 0;
        while Instant::now() < deadline {
            match lines.next() {
                Some(Ok(label)) => {
                    acknowledged.insert(label);
                    this_round += 1;
                }
                _ => break,
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix: no destructor, no flush.
        child.wait().unwrap();
        // Lines already printed before the kill were acknowledged too.
        for label in lines.map_while(Result::ok) {
            acknowledged.insert(label);
            this_round += 1;
        }
        assert!(
            this_round > 0,
            "round {round}: the child acknowledged nothing"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stored: HashSet<String> = runtime.block_on(async {
        let spool = SqliteSpool::open(&path, BacklogLimits::default()).unwrap();
        let events = spool.pending("acme", usize::MAX >> 1).await.unwrap();
        events
            .into_iter()
            .map(|e| e.json[10..e.json.len() - 2].to_owned())
            .collect()
    });
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    if lost.is_empty() {
        println!(
            "spool_crash: {} acknowledged events over 6 SIGKILLs, none lost",
            acknowledged.len()
        );
        println!("1 passed, 0 failed");
    } else {
        println!(
            "spool_crash: {} of {} acknowledged events lost: {:?}",
            lost.len(),
            acknowledged.len(),
            &lost[..lost.len().min(10)]
        );
        println!("0 passed, 1 failed");
        std::process::exit(1);
    }
}
