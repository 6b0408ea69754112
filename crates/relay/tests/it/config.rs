//! The configuration: the issue's example parses, mistakes are typed errors naming the key,
//! and no secret appears in errors or Debug output.

use evo_siem_relay::config::{ConfigError, DedupBackend, OutputConfig};
use evo_siem_relay::{Relay, RelayConfig, RelayError};
use std::collections::HashMap;

const EXAMPLE: &str = r#"
listen = "0.0.0.0:8090"
signing_secret_env = ["EVO_SIEM_SECRET"]
[dedup]
[[output]]
type = "file"
path = "/var/log/evo/audit.ndjson"
[[output]]
type = "syslog"
address = "127.0.0.1:6514"
[[output]]
type = "splunk_hec"
url = "https://splunk.example.com:8088"
token_env = "SPLUNK_HEC_TOKEN"
[[output]]
type = "elasticsearch"
url = "https://es.example.com:9200"
index = "evo-audit"
api_key_env = "ES_API_KEY"
"#;

const SIGNING: &str = "signing-secret-value-1";
const HEC_TOKEN: &str = "11111111-hec-token-value";
const ES_KEY: &str = "ZXMtYXBpLWtleS12YWx1ZQ==";

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn error(text: &str) -> String {
    RelayConfig::parse(text).unwrap_err().to_string()
}

#[test]
fn the_issues_example_parses_with_its_defaults() {
    let config = RelayConfig::parse(EXAMPLE).unwrap();
    assert_eq!(config.listen.to_string(), "0.0.0.0:8090");
    assert_eq!(config.path, "/webhook");
    assert_eq!(config.signing_secret_env, ["EVO_SIEM_SECRET"]);
    assert_eq!(config.replay_window_secs, 300);
    assert_eq!(config.max_body_bytes, 4 * 1024 * 1024);
    assert_eq!(config.dedup.backend, DedupBackend::Memory);
    assert_eq!(
        config.output_names(),
        ["file", "syslog", "splunk_hec", "elasticsearch"]
    );
    assert!(
        matches!(config.outputs[3], OutputConfig::Elasticsearch(ref es) if es.index == "evo-audit")
    );
}

#[test]
fn a_single_secret_variable_may_be_a_string_and_unnamed_outputs_are_numbered() {
    let config = RelayConfig::parse(
        r#"
        listen = "127.0.0.1:8090"
        signing_secret_env = "EVO_SIEM_SECRET"
        [[output]]
        type = "file"
        path = "a.ndjson"
        [[output]]
        type = "file"
        path = "b.ndjson"
        [[output]]
        type = "file"
        name = "archive"
        path = "c.ndjson"
        "#,
    )
    .unwrap();
    assert_eq!(config.signing_secret_env, ["EVO_SIEM_SECRET"]);
    assert_eq!(config.output_names(), ["file", "file-2", "archive"]);
}

#[test]
fn mistakes_are_refused_with_the_key_named() {
    let base = "listen = \"127.0.0.1:1\"\nsigning_secret_env = \"S\"\n";
    let file = "[[output]]\ntype = \"file\"\npath = \"a\"\n";
    assert!(error(&format!("{base}colour = 1\n{file}")).contains("colour"));
    assert!(error(&format!("{base}{file}bogus = true\n")).contains("bogus"));
    assert!(error(&format!("{base}[[output]]\ntype = \"kafka\"\n")).contains("kafka"));
    assert!(error(base).contains("no [[output]]"));
    assert!(error(&format!("listen = \"127.0.0.1:1\"\n{file}")).contains("no signing secret"));
    assert!(error(&format!("{base}path = \"webhook\"\n{file}")).contains("path must start with /"));
    assert!(error(&format!("{base}path = \"/metrics\"\n{file}")).contains("/metrics"));
    assert!(error(&format!("{base}request_timeout_ms = 0\n{file}")).contains("greater than zero"));
    assert!(
        error(&format!(
            "{base}{file}[[output]]\ntype = \"file\"\nname = \"file\"\npath = \"b\"\n"
        ))
        .contains("two outputs are named \"file\"")
    );
    assert!(error(&format!("{base}[dedup]\nbackend = \"redis\"\n{file}")).contains("url_env"));
    assert!(error(&format!("{base}[dedup]\nurl_env = \"R\"\n{file}")).contains("redis"));
    assert!(error(&format!("{base}[dedup]\nbackend = \"etcd\"\n{file}")).contains("etcd"));
    let syslog = |extra: &str| error(&format!("{base}[[output]]\ntype = \"syslog\"\n{extra}"));
    assert!(syslog("address = \"localhost\"\n").contains("not host:port"));
    assert!(syslog("address = \"h:514\"\nfacility = \"local9\"\n").contains("facility"));
    assert!(syslog("address = \"h:514\"\nca_file = \"ca.pem\"\n").contains("tls = true"));
    assert!(syslog("address = \"h:514\"\napp_name = \"evo siem\"\n").contains("app_name"));
    let hec = |extra: &str| error(&format!("{base}[[output]]\ntype = \"splunk_hec\"\n{extra}"));
    assert!(hec("url = \"https://h:8088\"\n").contains("token_env"));
    assert!(hec("url = \"https://admin:pw@h:8088\"\ntoken_env = \"T\"\n").contains("credentials"));
    assert!(hec("url = \"h:8088\"\ntoken_env = \"T\"\n").contains("url"));
    let es = |extra: &str| {
        error(&format!(
            "{base}[[output]]\ntype = \"elasticsearch\"\nurl = \"https://es:9200\"\n{extra}"
        ))
    };
    assert!(es("").contains("index"));
    assert!(es("index = \"Bad Index\"\n").contains("not a valid index name"));
    assert!(es("index = \"evo\"\nusername = \"u\"\n").contains("password"));
    assert!(
        es("index = \"evo\"\napi_key_env = \"K\"\nusername = \"u\"\npassword_env = \"P\"\n")
            .contains("not both")
    );
}

#[test]
fn secrets_come_from_the_environment_and_files_and_never_show() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "second-signing-secret\n").unwrap();
    let text = EXAMPLE.replace(
        "signing_secret_env = [\"EVO_SIEM_SECRET\"]",
        &format!(
            "signing_secret_env = [\"EVO_SIEM_SECRET\"]\nsigning_secret_file = [\"{}\"]\ndead_letter_path = \"{}\"",
            secret_file.display(),
            dir.path().join("dead.ndjson").display()
        ),
    );
    let config = RelayConfig::parse(&text).unwrap();
    let lookup = env(&[
        ("EVO_SIEM_SECRET", SIGNING),
        ("SPLUNK_HEC_TOKEN", HEC_TOKEN),
        ("ES_API_KEY", ES_KEY),
    ]);
    let secrets = config.signing_secrets(&lookup).unwrap();
    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[0].expose(), SIGNING.as_bytes());
    assert_eq!(secrets[1].expose(), b"second-signing-secret");

    let relay = Relay::from_config(&config, &lookup).unwrap();
    let debug = format!("{relay:?} {config:?}");
    for secret in [SIGNING, HEC_TOKEN, ES_KEY, "second-signing-secret"] {
        assert!(!debug.contains(secret), "{secret} shows in {debug}");
    }
    assert!(debug.contains("splunk.example.com"), "{debug}");

    // A missing variable is named; no value is.
    let missing = Relay::from_config(
        &config,
        &env(&[("EVO_SIEM_SECRET", SIGNING), ("ES_API_KEY", ES_KEY)]),
    )
    .unwrap_err();
    let message = missing.to_string();
    assert!(
        matches!(missing, RelayError::Config(ConfigError::MissingEnv { ref var, .. }) if var == "SPLUNK_HEC_TOKEN"),
        "{message}"
    );
    assert!(
        !message.contains(SIGNING) && !message.contains(ES_KEY),
        "{message}"
    );

    // An empty secret file is refused, naming the file.
    std::fs::write(&secret_file, "\n").unwrap();
    let empty = config.signing_secrets(&lookup).unwrap_err();
    assert!(
        matches!(empty, ConfigError::EmptySecretFile { .. }),
        "{empty}"
    );
}

#[test]
fn redis_dedup_reads_its_url_from_the_environment() {
    let config = RelayConfig::parse(
        r#"
        listen = "127.0.0.1:8090"
        signing_secret_env = "S"
        [dedup]
        backend = "redis"
        url_env = "REDIS_URL"
        [[output]]
        type = "file"
        path = "a.ndjson"
        "#,
    )
    .unwrap();
    let url = "redis://:hunter2-redis-password@127.0.0.1:6379/";
    let relay = Relay::from_config(&config, &env(&[("S", SIGNING), ("REDIS_URL", url)])).unwrap();
    assert!(!format!("{relay:?}").contains("hunter2"));
    let missing = Relay::from_config(&config, &env(&[("S", SIGNING)])).unwrap_err();
    assert!(missing.to_string().contains("REDIS_URL"), "{missing}");
}
