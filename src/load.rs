//! `evo-siem load`: a paced load on a running sender's ingest API.

use crate::cli::{LoadArgs, OutputFormat};
use crate::secret_source;
use anyhow::Context;
use evo_siem_workload::load::{self, LoadOptions, LoadReport};
use std::process::ExitCode;

pub(crate) fn run(args: &LoadArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.log.log_format, "warn");
    let token = secret_source::one(
        args.token_env.as_deref(),
        args.token_file.as_deref(),
        "the ingest token",
    )?;
    let options = LoadOptions {
        url: args.url.clone(),
        tenant: args.tenant.clone(),
        token,
        rate: args.rate,
        duration: args.duration,
        batch: args.batch,
        concurrency: args.concurrency,
        timeout: args.timeout,
        seed: args.seed,
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let report = runtime.block_on(load::run(&options))?;
    if args.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&options, &report));
    }
    Ok(if report.accepted + report.excluded > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn table(options: &LoadOptions, report: &LoadReport) -> String {
    let mut out = String::new();
    let mut row = |name: &str, value: String| out.push_str(&format!("  {name:<20} {value}\n"));
    row(
        "target",
        format!(
            "{} events/s for {:.1} s",
            options.rate,
            options.duration.as_secs_f64()
        ),
    );
    row(
        "achieved",
        format!("{:.0} events/s acknowledged", report.achieved_rate),
    );
    row(
        "requests",
        format!("{} ({} events each)", report.requests, options.batch),
    );
    row("events sent", report.events_sent.to_string());
    row(
        "accepted / excluded",
        format!("{} / {}", report.accepted, report.excluded),
    );
    let ms = |d: std::time::Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    match &report.latency {
        Some(l) => row(
            "latency",
            format!(
                "p50 {}  p90 {}  p99 {}  max {}",
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.max)
            ),
        ),
        None => row("latency", "no request acknowledged".into()),
    }
    if report.errors.is_empty() {
        row("errors", "none".into());
    } else {
        let errors: Vec<String> = report
            .errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        row("errors", errors.join(", "));
    }
    out
}
