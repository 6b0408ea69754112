//! `cargo xtask bench-http [--rounds N] [--secs S] [--conns C] [--client epoll|spin|both]`: the
//! receiver SDK's axum extractor against a bare axum handler (reads the body, answers 200) over
//! loopback HTTP, with the same signing load generator, the server on one core and the client on
//! the other.
//!
//! Beside those two, in the same rounds and with the same client, three more servers (see
//! [`MODES`]): two floors, a handler that only checks the HMAC and one that runs the SDK's whole
//! check without its store or extractor (signature, replay window, validation), which bound
//! from below what any receiver keeping the SDK's invariants can cost; and the peers' pipeline
//! (svix verify, serde_json typed parse, `lru`), what a user would run instead.
//!
//! Every request carries a batch with fresh UUIDs, a fresh `generated_at` and a fresh signature
//! (the generator signs as it goes), so the SDK's duplicate path is never what is measured. The
//! client is a raw HTTP/1.1 client on keep-alive connections (no pipelining): it does little
//! besides signing, so the server is the bottleneck, and its CPU use is reported so that this
//! can be checked. Each round runs every server in turn; the ratios are medians over rounds.
//! Also on the server's core, in the same run: the SDK's in-process accept + commit of the same
//! batches, the figure the 64 KiB HTTP rate is held against.
//!
//! Two clients (both by default). `epoll`: one current-thread tokio runtime that sleeps between
//! answers, as wrk does. `spin`: one thread polling non-blocking sockets in turn, never asleep.
//! On loopback the server's `write` runs the client socket's receive path, and the wake-up of a
//! sleeping client (an inter-processor interrupt, costly in a VM) is charged to the server's
//! CPU time; a slower server leaves the client asleep more often, so it pays more wake-ups per
//! request. The spinning client removes that cost from both servers, leaving each server's own
//! work and the TCP stack's.
//!
//! Two figures per comparison: per second of wall time, and per CPU-second of the server (its
//! main thread's run time from `/proc/PID/schedstat`; the in-process figure likewise). On a
//! machine whose cores other work shares, the wall-time rates depend on how much of its core
//! each process got; the per-CPU-second ratios do not.
//!
//! Sub-commands used by the orchestrator (built with the bench profile, each pinned with
//! `taskset`): `http-server MODE` prints its port and serves until killed; `http-load PORT
//! BYTES SECS CONNS SERVER_PID [epoll|spin] [evo|sw]` prints one `load:` line; `http-inproc
//! BYTES SECS` prints one `inproc:` line.

use crate::{cargo, project_root};
use anyhow::{Context, bail};
use evo_siem_protocol::headers::SIGNATURE_256;
use evo_siem_protocol::{Secret, encode_batch, format_generated_at, sign, standard_webhooks};
use evo_siem_receiver::{Delivered, Receiver, Rejection, VerifiedBatch};
use evo_siem_workload::generate::Generator;
use serde_json::value::RawValue;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// The peers' pipeline, the same file benches/accept.rs runs in process.
#[path = "../../benches/common/peers.rs"]
mod peers;

const SECRET: &str = "whsec-bench-http-5d1e";

/// `cargo xtask bench-http [--rounds N] [--secs S] [--conns C] [--client epoll|spin|both]`.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let flag = |name: &str, default: u64| -> anyhow::Result<u64> {
        match args.iter().position(|a| a == name) {
            Some(i) => args
                .get(i + 1)
                .context("a flag needs a value")?
                .parse()
                .with_context(|| format!("{name} takes a number")),
            None => Ok(default),
        }
    };
    let (rounds, secs, conns) = (
        flag("--rounds", 3)?,
        flag("--secs", 4)?,
        flag("--conns", 32)?,
    );
    let clients: &[&str] = match args.iter().position(|a| a == "--client") {
        None => &["epoll", "spin"],
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("epoll") => &["epoll"],
            Some("spin") => &["spin"],
            Some("both") => &["epoll", "spin"],
            other => bail!("--client epoll|spin|both, not {other:?}"),
        },
    };
    let root = project_root();
    let status = cargo()
        .current_dir(&root)
        // The bench profile (release settings, in target/release): it shares the benches' artifacts.
        .args(["build", "--profile", "bench", "-p", "xtask"])
        .status()
        .context("cannot build xtask with the bench profile")?;
    if !status.success() {
        bail!("cargo build --profile bench -p xtask failed: {status}");
    }
    let exe = root.join("target/release/xtask");
    let pinned = |core: &str| {
        let mut command = Command::new("taskset");
        command.args(["-c", core]).arg(&exe);
        command
    };
    let mut results: Vec<Summary> = Vec::new();
    for (bytes, client) in [1024usize, 64 * 1024]
        .into_iter()
        .flat_map(|bytes| clients.iter().map(move |client| (bytes, *client)))
    {
        let mut figures: [Vec<Figures>; MODES.len()] = Default::default();
        let mut inproc = Vec::new();
        for round in 0..rounds {
            for (mode, series) in MODES.iter().zip(&mut figures) {
                let mut server = Server::start(pinned("0").args(["http-server", mode]))?;
                let scheme = if *mode == "peers" { "sw" } else { "evo" };
                let output = pinned("1")
                    .args(["http-load", &server.port.to_string()])
                    .args([bytes.to_string(), secs.to_string(), conns.to_string()])
                    .arg(server.child.id().to_string())
                    .args([client, scheme])
                    .output()
                    .context("cannot run the load generator")?;
                server.stop();
                let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                if !output.status.success() {
                    bail!(
                        "the load generator failed against the {mode} server: {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
                println!("round {round} {bytes} B {mode} ({client} client): {line}");
                series.push(Figures {
                    requests: field(&line, "requests/s")?,
                    events: field(&line, "events/s")?,
                    requests_per_cpu: field(&line, "requests/server-cpu-s")?,
                    events_per_cpu: field(&line, "events/server-cpu-s")?,
                });
            }
            let output = pinned("0")
                .args(["http-inproc", &bytes.to_string(), &secs.to_string()])
                .output()
                .context("cannot run the in-process accept")?;
            let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            println!("round {round} {bytes} B in process: {line}");
            inproc.push((field(&line, "events/s")?, field(&line, "events/cpu-s")?));
        }
        results.push(Summary {
            bytes,
            client,
            figures,
            inproc,
        });
    }
    println!(
        "\n== HTTP, server on core 0, signing load generator on core 1 (medians of {rounds} rounds) ==\n\
         (epoll client: sleeps between answers, as wrk does, and each answer's wake-up of it is charged to \
         the server; spin client: never sleeps, so the server's CPU time is its own work and the TCP stack's)\n\
         (a/b: per second of wall time / per CPU-second of the server)"
    );
    for r in &results {
        let label = if r.bytes == 1024 { "1 KiB" } else { "64 KiB" };
        let client = r.client;
        let [bare, hmac, verify, sdk, peers] = &r.figures;
        println!(
            "http {label:>6}, {client:>5} client: SDK extractor {} of the bare axum handler's requests \
             (target >= 0.8 at 1 KiB); floors: the signature check alone {}, signature and validation \
             (Verifier::verify_indexed, no store) {}, the SDK {} of the latter; the peers' pipeline {}; \
             the SDK {} the peers'",
            r.ratio(sdk, bare),
            r.ratio(hmac, bare),
            r.ratio(verify, bare),
            r.ratio(sdk, verify),
            r.ratio(peers, bare),
            r.ratio(sdk, peers),
        );
        let inproc_events: Vec<f64> = sdk
            .iter()
            .zip(&r.inproc)
            .map(|(s, i)| s.events / i.0)
            .collect();
        let inproc_per_cpu: Vec<f64> = sdk
            .iter()
            .zip(&r.inproc)
            .map(|(s, i)| s.events_per_cpu / i.1)
            .collect();
        println!(
            "http {label:>6}, {client:>5} client: SDK {:.0} events/s, {:.2}/{:.2} of in-process accept on the \
             same core (target >= 0.8 at 64 KiB)",
            median(sdk.iter().map(|f| f.events).collect()),
            median(inproc_events),
            median(inproc_per_cpu),
        );
    }
    Ok(())
}

/// The servers, in the order each round runs them: `bare` reads the body and answers 200;
/// `hmac` also checks the `X-Evo-Signature-256` HMAC ([`verify_signature`]: raw HMAC-SHA256
/// speed), the least any receiver that verifies must do; `verify` runs the SDK's whole check
/// without its store or extractor ([`Verifier::verify_indexed`]: signature, replay window,
/// validation of every event, UUIDs decoded); `sdk` is the axum extractor with the default
/// store and a commit; `peers` is svix's verify + serde_json typed parse + an `lru` of 1 M
/// (benches/common/peers.rs), signed with Standard Webhooks headers.
///
/// [`verify_signature`]: evo_siem_protocol::verify_signature
/// [`Verifier::verify_indexed`]: evo_siem_protocol::Verifier::verify_indexed
const MODES: [&str; 5] = ["bare", "hmac", "verify", "sdk", "peers"];

/// One server's figures in one round.
struct Figures {
    requests: f64,
    events: f64,
    requests_per_cpu: f64,
    events_per_cpu: f64,
}

/// One batch size and client's figures, one per round and server (in [`MODES`] order).
struct Summary {
    bytes: usize,
    /// `epoll` or `spin`.
    client: &'static str,
    figures: [Vec<Figures>; MODES.len()],
    /// In-process events per second and per CPU-second, one per round.
    inproc: Vec<(f64, f64)>,
}

impl Summary {
    /// `a/b` of `of` against `against` over the rounds: medians of the per-round ratios of
    /// requests per wall-clock second and per server CPU-second.
    fn ratio(&self, of: &[Figures], against: &[Figures]) -> String {
        let wall = of
            .iter()
            .zip(against)
            .map(|(o, a)| o.requests / a.requests)
            .collect();
        let cpu = of
            .iter()
            .zip(against)
            .map(|(o, a)| o.requests_per_cpu / a.requests_per_cpu)
            .collect();
        format!("{:.2}/{:.2}", median(wall), median(cpu))
    }
}

fn field(line: &str, name: &str) -> anyhow::Result<f64> {
    line.split(", ")
        .find_map(|part| part.strip_suffix(name))
        .and_then(|value| value.split_whitespace().last()?.parse().ok())
        .with_context(|| format!("no {name} in {line:?}"))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A server child process; killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(command: &mut Command) -> anyhow::Result<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the server")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no server stdout")?)
            .read_line(&mut line)
            .context("no port from the server")?;
        let port = line.trim().parse().context("the server printed no port")?;
        Ok(Self { child, port })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `http-server MODE` (one of [`MODES`]): serves `POST /webhook` on an ephemeral loopback port
/// until killed.
pub(crate) fn serve(args: &[String]) -> anyhow::Result<()> {
    use axum::{Router, routing::post};
    use evo_siem_protocol::{Verifier, verify_signature};
    use http::{HeaderMap, StatusCode};
    let app = match args.first().map(String::as_str) {
        Some("bare") => Router::new().route(
            "/webhook",
            post(|body: axum::body::Bytes| async move {
                std::hint::black_box(body.len());
                StatusCode::OK
            }),
        ),
        Some("hmac") => {
            let secrets = Arc::new([Secret::new(SECRET)]);
            floor(
                move |header, body| match verify_signature(header, body, &*secrets) {
                    Ok(_) => StatusCode::OK,
                    Err(_) => StatusCode::UNAUTHORIZED,
                },
            )
        }
        Some("verify") => {
            let verifier = Arc::new(Verifier::new([Secret::new(SECRET)]));
            floor(move |header, body| {
                match verifier.verify_indexed(body, header, SystemTime::now()) {
                    Ok(batch) => {
                        for index in 0..batch.len() {
                            std::hint::black_box(batch.event_json(index)); // hand off
                        }
                        StatusCode::OK
                    }
                    Err(refusal) => StatusCode::from_u16(refusal.http_status())
                        .unwrap_or(StatusCode::BAD_REQUEST),
                }
            })
        }
        Some("sdk") => {
            async fn webhook(batch: VerifiedBatch) -> Result<Delivered, Rejection> {
                for event in batch.raw_events() {
                    std::hint::black_box(event.raw_json()); // hand off, as received
                }
                batch.commit().await
            }
            let receiver = Receiver::builder().secret(SECRET).build()?;
            Router::new()
                .route("/webhook", post(webhook))
                .with_state(receiver)
        }
        Some("peers") => {
            // The same capacity as the SDK's default store; both start empty.
            let pipeline = Arc::new(Mutex::new(peers::PeerPipeline::new(
                SECRET.as_bytes(),
                1_000_000,
            )));
            Router::new().route(
                "/webhook",
                post(
                    move |headers: HeaderMap, body: axum::body::Bytes| async move {
                        let mut pipeline = pipeline.lock().unwrap_or_else(|e| e.into_inner());
                        match pipeline.accept(&headers, &body) {
                            Ok(_) => StatusCode::OK,
                            Err(peers::PeerRefusal::Signature) => StatusCode::UNAUTHORIZED,
                            Err(peers::PeerRefusal::Body) => StatusCode::BAD_REQUEST,
                        }
                    },
                ),
            )
        }
        other => bail!("http-server {}, not {other:?}", MODES.join("|")),
    };
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        axum::serve(listener, app).await?;
        Ok(())
    })
}

/// A floor server: `check` gets the `X-Evo-Signature-256` value and the body, and picks the
/// status. The headers are taken from the request, not through axum's `HeaderMap` extractor,
/// which clones them (about 2 µs a request here) where the SDK's extractor does not: a floor
/// must not pay for what the SDK is spared.
fn floor(
    check: impl Fn(Option<&[u8]>, &[u8]) -> http::StatusCode + Clone + Send + Sync + 'static,
) -> axum::Router {
    use axum::{extract::Request, routing::post};
    axum::Router::new().route(
        "/webhook",
        post(move |request: Request| async move {
            let (parts, body) = request.into_parts();
            let Ok(body) = axum::body::to_bytes(body, 8 << 20).await else {
                return http::StatusCode::BAD_REQUEST;
            };
            let header = parts.headers.get(SIGNATURE_256).map(|v| v.as_bytes());
            check(header, &body)
        }),
    )
}

/// Batches of about `bytes` bytes with fresh UUIDs, a fresh `generated_at` and a fresh
/// signature each: a template re-encoded once a second, UUIDs rewritten in place.
struct Batches {
    secret: Secret,
    rng: u64,
    template: Vec<u8>,
    uuid_at: Vec<usize>,
    events: usize,
    stamped: Instant,
    generator: Generator,
    bytes: usize,
    /// Sign with the Standard Webhooks headers instead of `X-Evo-Signature-256`.
    standard_webhooks: bool,
}

impl Batches {
    fn new(bytes: usize) -> Self {
        let mut batches = Self {
            secret: Secret::new(SECRET),
            rng: 0x2545_F491_4F6C_DD1D ^ bytes as u64,
            template: Vec::new(),
            uuid_at: Vec::new(),
            events: 0,
            stamped: Instant::now(),
            generator: Generator::new(7, "acme", SystemTime::now()),
            bytes,
            standard_webhooks: false,
        };
        batches.restamp();
        batches
    }

    /// Connection `c`'s batches: its own UUID sequence, signed in `scheme` (`evo` or `sw`).
    fn for_connection(bytes: usize, c: u64, scheme: Scheme) -> Self {
        let mut batches = Self::new(bytes);
        batches.rng ^= c.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        batches.standard_webhooks = scheme == Scheme::StandardWebhooks;
        batches
    }

    fn restamp(&mut self) {
        let mut events = Vec::new();
        let mut size = 100;
        while size < self.bytes {
            let json = self.generator.next_event().json;
            size += json.len() + 1;
            events.push(RawValue::from_string(json).expect("the generator writes JSON"));
        }
        let refs: Vec<&RawValue> = events.iter().map(|e| &**e).collect();
        self.template = encode_batch(&refs, SystemTime::now());
        const KEY: &[u8] = b"\"uuid\":\"";
        self.uuid_at = self
            .template
            .windows(KEY.len())
            .enumerate()
            .filter(|(_, w)| *w == KEY)
            .map(|(i, _)| i + KEY.len())
            .collect();
        self.events = refs.len();
        self.stamped = Instant::now();
    }

    fn uuid(&mut self) -> uuid::Uuid {
        let mut next = || {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            self.rng
        };
        let bits = (u128::from(next()) << 64) | u128::from(next());
        uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid()
    }

    /// The next body (fresh UUIDs) and its `X-Evo-Signature-256` value.
    fn next(&mut self, body: &mut Vec<u8>) -> String {
        self.refresh(body);
        sign(&self.secret, body)
    }

    /// The next body, with fresh UUIDs, unsigned.
    fn refresh(&mut self, body: &mut Vec<u8>) {
        if self.stamped.elapsed() > Duration::from_secs(1) {
            self.restamp();
        }
        body.clear();
        body.extend_from_slice(&self.template);
        for i in 0..self.uuid_at.len() {
            let at = self.uuid_at[i];
            let uuid = self.uuid();
            uuid.hyphenated()
                .encode_lower(&mut body[at..at + uuid::fmt::Hyphenated::LENGTH]);
        }
    }

    /// One whole HTTP/1.1 request, written into `out`: signed with `X-Evo-Signature-256`, or
    /// with the Standard Webhooks headers alone when `standard_webhooks` is set.
    fn request(&mut self, out: &mut Vec<u8>, body: &mut Vec<u8>) {
        self.refresh(body);
        let delivery = self.uuid();
        let signing = if self.standard_webhooks {
            let id = format!("msg_{}", delivery.simple());
            let timestamp = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let signature = standard_webhooks::sign(&self.secret, &id, timestamp, body);
            format!(
                "webhook-id: {id}\r\nwebhook-timestamp: {timestamp}\r\n\
                 webhook-signature: {signature}\r\n"
            )
        } else {
            format!(
                "x-evo-signature-256: {}\r\nx-evo-delivery-id: {delivery}\r\n\
                 x-evo-delivery-attempt: 1\r\n",
                sign(&self.secret, body)
            )
        };
        out.clear();
        out.extend_from_slice(
            format!(
                "POST /webhook HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n{signing}\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(body);
    }
}

/// Reads one response; returns its status code (0 for a head that cannot be read).
async fn read_response(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(status) = complete_response(buf) {
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed mid-response");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// CPU time a process's main thread has run, from /proc (`self` or a pid), in nanoseconds of
/// precision (`schedstat`); every process here runs on one thread.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let ns = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// How the load generator signs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `X-Evo-Signature-256`, `X-Evo-Delivery-Id`, `X-Evo-Delivery-Attempt`.
    Evo,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`, for the peers' server.
    StandardWebhooks,
}

/// `http-load PORT BYTES SECS CONNS SERVER_PID [epoll|spin] [evo|sw]`: one warm-up second, then SECS of
/// measurement; the server's CPU time over the same window gives requests per server CPU-second, the figure
/// to compare when other work shares the server's core.
pub(crate) fn load(args: &[String]) -> anyhow::Result<()> {
    let arg = |i: usize| -> anyhow::Result<u64> {
        args.get(i)
            .context("http-load PORT BYTES SECS CONNS SERVER_PID [epoll|spin] [evo|sw]")?
            .parse()
            .context("a number")
    };
    let (port, bytes, secs, conns) = (arg(0)? as u16, arg(1)? as usize, arg(2)?, arg(3)?);
    let server = arg(4)?.to_string();
    let events_per_batch = Batches::new(bytes).events;
    let scheme = match args.get(6).map(String::as_str) {
        None | Some("evo") => Scheme::Evo,
        Some("sw") => Scheme::StandardWebhooks,
        Some(other) => bail!("the signature scheme is evo or sw, not {other:?}"),
    };
    match args.get(5).map(String::as_str) {
        None | Some("epoll") => {}
        Some("spin") => {
            return spin_load(port, bytes, secs, conns, &server, events_per_batch, scheme);
        }
        Some(other) => bail!("the client is epoll or spin, not {other:?}"),
    }
    runtime()?.block_on(async move {
        let start = Instant::now() + Duration::from_secs(1);
        let end = start + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for c in 0..conns {
            tasks.push(tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                stream.set_nodelay(true)?;
                let mut batches = Batches::for_connection(bytes, c, scheme);
                let (mut request, mut body, mut response) = (Vec::new(), Vec::new(), Vec::new());
                let (mut ok, mut failed) = (0u64, 0u64);
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    batches.request(&mut request, &mut body);
                    stream.write_all(&request).await?;
                    let status = read_response(&mut stream, &mut response).await?;
                    if now >= start {
                        if status == 200 {
                            ok += 1;
                        } else {
                            failed += 1;
                        }
                    }
                }
                anyhow::Ok((ok, failed))
            }));
        }
        tokio::time::sleep_until(start.into()).await;
        let (cpu_start, server_start) = (cpu_time("self"), cpu_time(&server));
        let (mut ok, mut failed) = (0, 0);
        for task in tasks {
            let (o, f) = task.await??;
            ok += o;
            failed += f;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = (cpu_time("self") - cpu_start).as_secs_f64() / elapsed;
        let server_cpu = (cpu_time(&server) - server_start).as_secs_f64();
        report(
            ok,
            failed,
            elapsed,
            server_cpu,
            cpu,
            events_per_batch,
            conns,
        )
    })
}

/// Prints the `load:` line both clients end with.
fn report(
    ok: u64,
    failed: u64,
    elapsed: f64,
    server_cpu: f64,
    cpu: f64,
    events_per_batch: usize,
    conns: u64,
) -> anyhow::Result<()> {
    if failed > 0 {
        bail!("{failed} requests were not answered 200");
    }
    println!(
        "load: {:.0} requests/s, {:.0} events/s, {:.0} requests/server-cpu-s, {:.0} events/server-cpu-s, \
         {} events a batch, server CPU {:.0} %, client CPU {:.0} %, {conns} connections",
        ok as f64 / elapsed,
        (ok * events_per_batch as u64) as f64 / elapsed,
        ok as f64 / server_cpu,
        (ok * events_per_batch as u64) as f64 / server_cpu,
        events_per_batch,
        server_cpu / elapsed * 100.0,
        cpu * 100.0,
    );
    Ok(())
}

/// One connection of the spinning client: the request being written, then the answer being read.
struct SpinConn {
    stream: std::net::TcpStream,
    batches: Batches,
    request: Vec<u8>,
    body: Vec<u8>,
    written: usize,
    response: Vec<u8>,
    sent_at: Instant,
}

/// The same load as the epoll client, from one thread that never sleeps: non-blocking sockets
/// polled in turn. On loopback the server's `write` runs the client socket's receive path and,
/// when the client thread sleeps in `epoll_wait`, its wake-up (an inter-processor interrupt,
/// costly in a VM), all charged to the server's CPU time; the slower of two servers leaves the
/// client asleep more often and so pays more of it. With a client that never sleeps no wake-up
/// is needed, and the server's CPU time is its own work and the TCP stack's.
fn spin_load(
    port: u16,
    bytes: usize,
    secs: u64,
    conns: u64,
    server: &str,
    events_per_batch: usize,
    scheme: Scheme,
) -> anyhow::Result<()> {
    use std::io::{ErrorKind, Read, Write};
    let start = Instant::now() + Duration::from_secs(1);
    let end = start + Duration::from_secs(secs);
    let mut connections = Vec::new();
    for c in 0..conns {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let batches = Batches::for_connection(bytes, c, scheme);
        let mut conn = SpinConn {
            stream,
            batches,
            request: Vec::new(),
            body: Vec::new(),
            written: 0,
            response: Vec::with_capacity(4096),
            sent_at: Instant::now(),
        };
        conn.batches.request(&mut conn.request, &mut conn.body);
        connections.push(conn);
    }
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut measuring = None;
    let mut chunk = [0u8; 4096];
    while !connections.is_empty() {
        let now = Instant::now();
        if measuring.is_none() && now >= start {
            measuring = Some((cpu_time("self"), cpu_time(server)));
        }
        connections.retain_mut(|conn| {
            if conn.written < conn.request.len() {
                match conn.stream.write(&conn.request[conn.written..]) {
                    Ok(n) => conn.written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(_) => {
                        failed += 1;
                        return false;
                    }
                }
                return true;
            }
            match conn.stream.read(&mut chunk) {
                Ok(0) => {
                    failed += 1;
                    return false;
                }
                Ok(n) => conn.response.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => {
                    failed += 1;
                    return false;
                }
            }
            let Some(status) = complete_response(&conn.response) else {
                return true;
            };
            if conn.sent_at >= start {
                if status == 200 {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            if now >= end {
                return false;
            }
            conn.response.clear();
            conn.written = 0;
            conn.sent_at = now;
            conn.batches.request(&mut conn.request, &mut conn.body);
            true
        });
    }
    let (cpu_start, server_start) = measuring.context("the run ended before it started")?;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = (cpu_time("self") - cpu_start).as_secs_f64() / elapsed;
    let server_cpu = (cpu_time(server) - server_start).as_secs_f64();
    report(
        ok,
        failed,
        elapsed,
        server_cpu,
        cpu,
        events_per_batch,
        conns,
    )
}

/// The status of the response in `buf` once it is whole (head and `Content-Length` bytes of
/// body); `None` while more is to come. A status of 0 stands for an unreadable head.
fn complete_response(buf: &[u8]) -> Option<u16> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Some(0);
    };
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    (buf.len() >= end + 4 + length).then_some(status)
}

/// `http-inproc BYTES SECS`: `Receiver::accept` + commit of the same kind of batches in
/// process, in chunks generated beforehand, for SECS of accepting: events per second of wall
/// time and per CPU-second (the figure to compare with the server's under contention).
pub(crate) fn inproc(args: &[String]) -> anyhow::Result<()> {
    let arg = |i: usize| -> anyhow::Result<u64> {
        args.get(i)
            .context("http-inproc BYTES SECS")?
            .parse()
            .context("a number")
    };
    let (bytes, secs) = (arg(0)? as usize, arg(1)?);
    let receiver = Receiver::builder().secret(SECRET).build()?;
    let mut batches = Batches::new(bytes);
    let runtime = runtime()?;
    let chunk = (4 << 20) / bytes.max(1);
    let (mut wall, mut cpu, mut events) = (Duration::ZERO, Duration::ZERO, 0u64);
    let mut body = Vec::new();
    while wall < Duration::from_secs(secs) {
        let mut requests = Vec::with_capacity(chunk);
        for _ in 0..chunk {
            let signature = batches.next(&mut body);
            let mut headers = http::HeaderMap::new();
            headers.insert(
                evo_siem_protocol::headers::SIGNATURE_256,
                signature.parse()?,
            );
            requests.push((headers, bytes::Bytes::from(body.clone())));
        }
        let (start, cpu_start) = (Instant::now(), cpu_time("self"));
        for (headers, body) in requests {
            let accepted = runtime.block_on(async {
                let batch = receiver
                    .accept(&headers, body, SystemTime::now())
                    .await
                    .map_err(|r| anyhow::anyhow!("refused: {r}"))?;
                for event in batch.raw_events() {
                    std::hint::black_box(event.raw_json());
                }
                anyhow::Ok(batch.commit().await.map_err(|r| anyhow::anyhow!("{r}"))?)
            })?;
            events += accepted.accepted as u64;
        }
        wall += start.elapsed();
        cpu += cpu_time("self") - cpu_start;
    }
    println!(
        "inproc: {:.0} events/s, {:.0} events/cpu-s, {} events a batch (generated_at {})",
        events as f64 / wall.as_secs_f64(),
        events as f64 / cpu.as_secs_f64(),
        batches.events,
        format_generated_at(SystemTime::now()),
    );
    Ok(())
}
