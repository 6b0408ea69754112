//! `evo-siem generate`: realistic audit events as NDJSON.

use crate::cli::GenerateArgs;
use anyhow::{Context, bail};
use evo_siem_workload::generate::{Generator, parse_actions};
use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

/// Tenant names, in order; beyond them, `tenant-N`.
const TENANTS: [&str; 8] = [
    "acme", "globex", "initech", "umbrella", "hooli", "soylent", "wonka", "tyrell",
];

/// The name of the `i`-th tenant (from 0).
pub(crate) fn tenant_name(i: usize) -> String {
    TENANTS
        .get(i)
        .map_or_else(|| format!("tenant-{}", i + 1), |t| (*t).to_owned())
}

pub(crate) fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    if args.tenants == 0 {
        bail!("--tenants must be at least 1");
    }
    if args.tenants > 1 && args.out_dir.is_none() {
        bail!("with --tenants above 1, give --out-dir: each tenant gets its own file");
    }
    let actions = match &args.actions_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(parse_actions(&text).with_context(|| path.display().to_string())?)
        }
        None => None,
    };
    let start = match &args.start {
        Some(text) => evo_siem_protocol::parse_rfc3339(text)
            .with_context(|| format!("--start {text:?} is not an RFC 3339 time"))?,
        None => SystemTime::now(),
    };
    let seed = args.seed.unwrap_or_else(|| {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(start)
    });
    let tenants = u64::try_from(args.tenants).context("--tenants")?;
    for i in 0..args.tenants {
        let tenant = tenant_name(i);
        let index = u64::try_from(i).context("--tenants")?;
        // The remainder goes to the first tenants.
        let count = args.count / tenants + u64::from(index < args.count % tenants);
        let mut generator = Generator::new(seed, &tenant, start);
        if let Some(actions) = &actions {
            generator = generator.with_actions(actions.clone())?;
        }
        let out: Box<dyn Write> = match &args.out_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let path = dir.join(format!("{tenant}.ndjson"));
                Box::new(
                    std::fs::File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                )
            }
            None => Box::new(std::io::stdout().lock()),
        };
        let mut out = std::io::BufWriter::new(out);
        for event in generator.take(usize::try_from(count).context("--count")?) {
            out.write_all(event.json.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
