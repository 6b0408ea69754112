//! The clients that post to tenant-controlled URLs ignore the environment's proxy variables.
//!
//! Through a proxy the target host is resolved by the proxy, never by the outbound guard, so an
//! internal host would be reached. `evo-siem send-test` (the same `Dispatcher` as deliveries and
//! Test Saved Webhook) runs here as a child process, since the workspace forbids the `unsafe`
//! that setting variables in this process would take.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::process::{Command, Stdio};

/// Whether anything connected to `listener` (connections wait in the accept queue: nothing here
/// ever accepts them before the child is done).
fn was_contacted(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).unwrap();
    match listener.accept() {
        Ok(_) => true,
        Err(err) if err.kind() == ErrorKind::WouldBlock => false,
        Err(err) => panic!("{err}"),
    }
}

#[test]
fn send_test_ignores_proxy_variables_and_the_guard_judges_the_target() {
    let proxy = TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    // A host name resolving to loopback: only the guard's resolver can refuse it.
    let url = format!(
        "https://localhost:{}/webhook",
        target.local_addr().unwrap().port()
    );

    let mut command = Command::new(env!("CARGO_BIN_EXE_evo-siem"));
    command
        .args([
            "send-test",
            "--url",
            &url,
            "--timeout",
            "3s",
            "--format",
            "json",
        ])
        .stdin(Stdio::null())
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        command.env(var, &proxy_url);
    }
    let output = command.output().expect("the binary starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let diagnosis: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(diagnosis["failure"], "blocked", "{stdout}");
    assert!(!was_contacted(&proxy), "the proxy was contacted: {stdout}");
    assert!(
        !was_contacted(&target),
        "the target was contacted: {stdout}"
    );
}
