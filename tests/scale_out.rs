//! Scaling out, end to end: the conformance sender suite against three `evo-siem sender`
//! processes sharing one PostgreSQL spool, one of them killed with SIGKILL and restarted in the
//! cases that restart. Every guarantee of one instance must hold.

use std::process::Command;

#[test]
fn three_instances_on_one_postgres_spool_keep_every_guarantee() {
    evo_siem_test_services::postgres().unwrap_or_else(|e| panic!("{e}"));
    let output = Command::new(env!("CARGO_BIN_EXE_evo-siem"))
        .args([
            "conformance",
            "sender",
            "--process",
            "cluster",
            "--instances",
            "3",
        ])
        .args(["--cases", "8", "--seed", "3", "--format", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(report["failure"].is_null(), "{:#}", report["failure"]);
    let totals = &report["totals"];
    assert!(
        totals["restarts"].as_u64().unwrap() > 0,
        "no instance was killed: {totals}"
    );
    assert!(totals["checks_passed"].as_u64().unwrap() >= 8, "{totals}");
    assert!(output.status.success());
}
