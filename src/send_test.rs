//! `evo-siem send-test`: "Test Saved Webhook" from the command line.

use crate::cli::{OutputFormat, SendTestArgs};
use crate::secret_source;
use anyhow::Context;
use evo_siem_sender::Integration;
use evo_siem_sender::api::admin::webhook_test::{Diagnosis, diagnose};
use evo_siem_sender::dispatch::{DispatchSettings, Dispatcher, FailureKind};
use std::process::ExitCode;

pub(crate) fn run(args: &SendTestArgs) -> anyhow::Result<ExitCode> {
    let allowed = args
        .allow_private
        .iter()
        .map(|cidr| {
            cidr.parse()
                .with_context(|| format!("--allow-private {cidr:?} is not a CIDR"))
        })
        .collect::<anyhow::Result<Vec<ipnet::IpNet>>>()?;
    let secret = if args.secrets.env.is_empty() && args.secrets.file.is_empty() {
        None
    } else {
        Some(secret_source::load(&args.secrets)?.remove(0))
    };
    let diagnosis = match Integration::new("send-test", &args.url, &allowed) {
        Err(err) => Diagnosis {
            ok: false,
            status: None,
            latency_ms: 0.0,
            failure: Some(FailureKind::Blocked),
            diagnosis: "the outbound guard refuses this URL before sending".into(),
            detail: err.to_string(),
            delivery_id: String::new(),
        },
        Ok(mut integration) => {
            if let Some(secret) = secret {
                integration = integration.with_secret(secret);
            }
            for header in &args.headers {
                let (name, value) = header
                    .split_once(':')
                    .with_context(|| format!("--header {header:?} is not `Name: value`"))?;
                integration = integration
                    .with_header(name.trim(), value.trim())
                    .with_context(|| format!("--header {:?}", name.trim()))?;
            }
            for (path, name, value) in header_files(&args.header_files)? {
                integration = integration
                    .with_header(&name, &value)
                    .with_context(|| format!("{}: header {name:?}", path.display()))?;
            }
            let settings = DispatchSettings {
                timeout: args.timeout,
                allowed,
                ..DispatchSettings::default()
            };
            let dispatcher = Dispatcher::new(&settings).context("cannot build the HTTP client")?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(diagnose(&dispatcher, &integration, "evo-siem send-test"))
        }
    };
    if args.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&diagnosis)?);
    } else {
        let verdict = if diagnosis.ok { "OK" } else { "FAILED" };
        println!("{verdict}: {}", diagnosis.diagnosis);
        if let Some(status) = diagnosis.status {
            println!("  status       {status}");
        }
        if let Some(failure) = diagnosis.failure {
            println!("  failure      {}", failure.as_str());
        }
        println!("  latency      {:.1} ms", diagnosis.latency_ms);
        if !diagnosis.delivery_id.is_empty() {
            println!("  delivery id  {}", diagnosis.delivery_id);
        }
        if !diagnosis.detail.is_empty() {
            println!("  answer       {}", diagnosis.detail.replace('\n', " "));
        }
    }
    Ok(if diagnosis.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The headers of every `--header-file`: one `Name: value` per line. Errors name the file and the
/// line number, never the line, which may hold the secret.
fn header_files(
    paths: &[std::path::PathBuf],
) -> anyhow::Result<Vec<(&std::path::Path, String, String)>> {
    let mut headers = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --header-file {}", path.display()))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line.split_once(':').with_context(|| {
                format!("{} line {}: not `Name: value`", path.display(), number + 1)
            })?;
            headers.push((
                path.as_path(),
                name.trim().to_owned(),
                value.trim().to_owned(),
            ));
        }
    }
    Ok(headers)
}
