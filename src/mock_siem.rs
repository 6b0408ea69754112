//! `evo-siem mock-siem`: runs the mock SIEM until SIGTERM or Ctrl-C, then exits 0.

use crate::cli::MockSiemArgs;
use crate::secret_source;
use anyhow::Context;
use evo_siem_mock::faults::{Action, Rule, When};
use evo_siem_mock::{MockSiem, MockSiemConfig};
use std::process::ExitCode;

pub(crate) fn run(args: &MockSiemArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init(args.log.log_format, "info,evo_siem_receiver=debug");
    let secrets = secret_source::load_any(&args.secrets)?;
    let config = if secrets.is_empty() {
        MockSiemConfig::unsigned()
    } else {
        MockSiemConfig::signed(secrets)
    };
    #[cfg_attr(not(feature = "redis"), allow(unused_mut))]
    let mut config = config.path(args.path.clone()).seed(args.seed);
    #[cfg(feature = "redis")]
    if args.redis_url_env.is_some() || args.redis_url_file.is_some() {
        let url = secret_source::one(
            args.redis_url_env.as_deref(),
            args.redis_url_file.as_deref(),
            "the Redis URL",
        )?;
        let store = evo_siem_dedup_redis::RedisDedup::new(
            evo_siem_dedup_redis::RedisDedupConfig::new(url),
        )?;
        config = config.dedup(std::sync::Arc::new(store));
    }
    let rules = rules(args)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Listening for SIGTERM before saying we listen: a stop that comes at once is not lost.
        let stop = stop_signal()?;
        let siem = MockSiem::start(args.listen, config)
            .await
            .context("cannot start the mock SIEM")?;
        if !rules.is_empty() {
            eprintln!("fault rules: {}", rules.len());
        }
        siem.set_faults(rules).context("invalid fault flags")?;
        eprintln!("mock SIEM listening: deliver to {}", siem.webhook_url());
        eprintln!(
            "watch: open http://{}/ in a browser (deliveries live, faults by form)",
            siem.addr()
        );
        eprintln!("inspect: curl -s http://{}/_mock/stats", siem.addr());
        stop.await;
        tracing::info!("mock SIEM stopping");
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A future that resolves on SIGTERM (what a service manager or `docker stop` sends) or Ctrl-C.
/// SIGTERM is caught from this call on, so call it before anyone may send it.
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot catch SIGTERM")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// The fault rules of the command line: the file's first, then the flags, most specific first
/// (the first matching rule acts, so the delay that applies to everything comes last).
fn rules(args: &MockSiemArgs) -> anyhow::Result<Vec<Rule>> {
    let mut rules: Vec<Rule> = match &args.faults {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a list of fault rules", path.display()))?
        }
        None => Vec::new(),
    };
    let fail = Action::Status {
        status: args.fail_status,
        retry_after: args.retry_after,
    };
    if let Some(n) = args.fail_first {
        rules.push(Rule {
            when: When::First(n),
            action: fail.clone(),
        });
    }
    if let Some(p) = args.drop_rate {
        rules.push(Rule {
            when: When::Probability(p),
            action: Action::Drop,
        });
    }
    if let Some(p) = args.fail_rate {
        rules.push(Rule {
            when: When::Probability(p),
            action: fail,
        });
    }
    if let Some(delay) = args.delay {
        let ms = u64::try_from(delay.as_millis()).context("--delay is too long")?;
        rules.push(Rule {
            when: When::Always,
            action: Action::DelayMs(ms),
        });
    }
    evo_siem_mock::faults::validate(&rules).context("invalid fault flags")?;
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> MockSiemArgs {
        let cli =
            crate::cli::Cli::try_parse_from(["evo-siem", "mock-siem"].iter().chain(args.iter()))
                .unwrap();
        match cli.command {
            crate::cli::Command::MockSiem(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_become_rules_in_a_fixed_order() {
        let args = parse(&[
            "--delay",
            "50ms",
            "--fail-rate",
            "0.1",
            "--drop-rate",
            "0.05",
            "--fail-first",
            "3",
            "--fail-status",
            "429",
            "--retry-after",
            "2s",
        ]);
        let fail = Action::Status {
            status: 429,
            retry_after: Some(2),
        };
        assert_eq!(
            rules(&args).unwrap(),
            [
                Rule {
                    when: When::First(3),
                    action: fail.clone()
                },
                Rule {
                    when: When::Probability(0.05),
                    action: Action::Drop
                },
                Rule {
                    when: When::Probability(0.1),
                    action: fail
                },
                Rule {
                    when: When::Always,
                    action: Action::DelayMs(50)
                },
            ]
        );
        assert!(rules(&parse(&[])).unwrap().is_empty());
    }

    #[test]
    fn nonsense_flags_are_refused() {
        let err = rules(&parse(&["--fail-rate", "3"])).unwrap_err();
        assert!(format!("{err:#}").contains("probability"), "{err:#}");
        let err = rules(&parse(&["--fail-first", "1", "--fail-status", "42"])).unwrap_err();
        assert!(format!("{err:#}").contains("status"), "{err:#}");
    }

    #[test]
    fn a_rules_file_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("faults.json");
        std::fs::write(&file, r#"[{"when": {"nth": 2}, "action": "reset"}]"#).unwrap();
        let args = parse(&["--faults", file.to_str().unwrap(), "--fail-first", "1"]);
        let rules = rules(&args).unwrap();
        assert_eq!(rules[0].action, Action::Reset);
        assert_eq!(rules[1].when, When::First(1));
    }
}
