//! `evo-siem conformance receiver` (the receiver suite against any URL) and `evo-siem
//! conformance sender` (the sender suite against mock SIEMs).

use crate::cli::{OutputFormat, ReceiverSuiteArgs, SenderProcess, SenderSuiteArgs};
use crate::secret_source;
use anyhow::Context;
use evo_siem_conformance::receiver::{self, ReceiverTarget, Verdict};
use evo_siem_conformance::sender::{self, ChildProcess, Cluster, InProcess, SuiteOptions};
use std::process::ExitCode;
use std::time::Duration;

pub(crate) fn receiver(args: &ReceiverSuiteArgs) -> anyhow::Result<ExitCode> {
    let secret = secret_source::load(&args.secrets)?.remove(0);
    let target = ReceiverTarget {
        url: args.url.clone(),
        secret,
        max_body: args.max_body,
        timeout: Duration::from_secs(10),
        scheme: args.signature_scheme.into(),
    };
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let results = runtime.block_on(receiver::run(&target))?;
    match args.format {
        OutputFormat::Table => print!("{}", receiver::table(&results)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&results)?),
    }
    let count = |v| results.iter().filter(|r| r.verdict == v).count();
    let (passed, warned, failed) = (
        count(Verdict::Pass),
        count(Verdict::Warn),
        count(Verdict::Fail),
    );
    eprintln!("{passed} passed, {warned} warnings, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(crate) fn sender(args: &SenderSuiteArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.log.log_format, "warn");
    let options = SuiteOptions {
        cases: args.cases,
        seed: args.seed,
        max_events: args.max_events,
        ..SuiteOptions::default()
    };
    let report = match args.process {
        SenderProcess::InProcess => sender::run(&options, InProcess::default),
        SenderProcess::Child => {
            let bin = std::env::current_exe().context("cannot find this binary")?;
            let child = ChildProcess::new(bin).context("cannot create a temporary directory")?;
            sender::run(&options, move || child)
        }
        SenderProcess::Cluster => {
            let bin = std::env::current_exe().context("cannot find this binary")?;
            let cluster = Cluster::new(bin, args.instances, args.lease_ttl)
                .context("cannot create a temporary directory")?;
            sender::run(&options, move || cluster)
        }
    };
    if args.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", sender::table(&report));
    }
    Ok(if report.failure.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
