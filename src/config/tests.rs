//! The configuration layers, values and rules, tested without a node.

use super::*;

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn defaults_match_the_spec() {
    let c = Config::defaults().expect("defaults");
    assert_eq!(c.listen, "0.0.0.0:5000".parse().expect("addr"));
    assert_eq!(c.admin_listen, "127.0.0.1:5080".parse().expect("addr"));
    assert_eq!(c.heartbeat_interval, Duration::from_secs(10));
    assert_eq!(c.exchange_interval, Duration::from_secs(60));
    assert_eq!((c.max_outbound, c.max_inbound), (8, 64));
    assert_eq!(c.max_known_peers, 1000);
    assert_eq!(c.exchange_max_entries, 50);
    assert_eq!(c.missed_heartbeats, 3);
    assert_eq!(c.max_failures, 5);
    assert!(c.seeds.is_empty());
    assert!(c.database_url.is_none());
}

#[test]
fn precedence_is_default_file_env_flag() {
    let mut layers = Layers::default();
    layers
        .add_toml(
            "heartbeat_interval = \"2s\"\nmax_outbound = 4\nname = \"file\"\nseeds = [\"a:1\"]",
            Source::File("f.toml".into()),
        )
        .expect("file");
    layers
        .add_env(env_of(&[
            ("SORCHA_PEER_HEARTBEAT_INTERVAL", "200ms"),
            ("SORCHA_PEER_NAME", "env"),
            ("SORCHA_PEER_SEEDS", "b:2, c:3"),
        ]))
        .expect("env");
    layers
        .add_flag("name", "--name", toml::Value::String("flag".into()))
        .expect("flag");
    let c = layers.resolve().expect("resolve");
    assert_eq!(c.heartbeat_interval, Duration::from_millis(200));
    assert_eq!(c.max_outbound, 4);
    assert_eq!(c.name, "flag");
    assert_eq!(c.seeds, vec!["b:2".to_string(), "c:3".to_string()]);
}

#[test]
fn exchange_interval_zero_turns_exchange_off() {
    let mut layers = Layers::default();
    layers
        .add_toml("exchange_interval = 0", Source::Default)
        .expect("toml");
    assert!(!layers.resolve().expect("resolve").exchange_enabled());
    let mut layers = Layers::default();
    layers
        .add_env(env_of(&[("SORCHA_PEER_EXCHANGE_INTERVAL", "0")]))
        .expect("env");
    assert!(!layers.resolve().expect("resolve").exchange_enabled());
}

#[test]
fn bad_values_name_the_key_and_the_source() {
    let mut layers = Layers::default();
    layers
        .add_env(env_of(&[("SORCHA_PEER_HEARTBEAT_INTERVAL", "often")]))
        .expect("env");
    let err = layers.resolve().expect_err("bad duration").to_string();
    assert!(err.contains("`heartbeat_interval`"), "{err}");
    assert!(err.contains("SORCHA_PEER_HEARTBEAT_INTERVAL"), "{err}");

    let mut layers = Layers::default();
    let err = layers
        .add_toml(
            "heartbeat_intervall = \"1s\"",
            Source::File("x.toml".into()),
        )
        .expect_err("typo")
        .to_string();
    assert!(err.contains("heartbeat_intervall"), "{err}");

    for (toml, key) in [
        ("max_outbound = \"many\"", "max_outbound"),
        ("listen = \"nowhere\"", "listen"),
        ("seeds = [\"no-port\"]", "seeds"),
        ("heartbeat_interval = \"0\"", "heartbeat_interval"),
        ("database_url = \"mysql://x\"", "database_url"),
        ("reconnect_backoff_min = \"2m\"", "reconnect_backoff_max"),
        (
            "automatic_ban_duration = \"101y\"",
            "automatic_ban_duration",
        ),
        ("automatic_ban_duration = \"0\"", "automatic_ban_duration"),
        ("otlp_endpoint = \"127.0.0.1:4317\"", "otlp_endpoint"),
        (
            "otlp_endpoint = \"https://collector:4317\"",
            "otlp_endpoint",
        ),
        (
            "otlp_endpoint = \"http://collector:4318/v1/traces\"",
            "otlp_endpoint",
        ),
        ("otlp_endpoint = \"http://\"", "otlp_endpoint"),
        ("otlp_service_name = \"\"", "otlp_service_name"),
    ] {
        let mut layers = Layers::default();
        layers.add_toml(toml, Source::Default).expect("parse");
        let err = layers.resolve().expect_err(toml).to_string();
        assert!(err.contains(&format!("`{key}`")), "{toml}: {err}");
    }
}

#[test]
fn numbers_that_do_not_fit_their_field_are_errors_naming_the_key() {
    for (toml, key) in [
        ("missed_heartbeats = 4294967296", "missed_heartbeats"),
        ("sync_batch_dockets = 4294967297", "sync_batch_dockets"),
        (
            "verification_ban_threshold = 9999999999",
            "verification_ban_threshold",
        ),
    ] {
        let mut layers = Layers::default();
        layers.add_toml(toml, Source::Default).expect("parse");
        let err = layers.resolve().expect_err(toml).to_string();
        assert!(err.contains(&format!("`{key}`")), "{toml}: {err}");
        assert!(err.contains("too large"), "{toml}: {err}");
    }
    let mut layers = Layers::default();
    layers
        .add_env(env_of(&[("SORCHA_PEER_MAX_FAILURES", "4294967301")]))
        .expect("env");
    let err = layers.resolve().expect_err("too large").to_string();
    assert!(err.contains("`max_failures`"), "{err}");
    assert!(err.contains("SORCHA_PEER_MAX_FAILURES"), "{err}");
    // The largest value that fits is taken as it is.
    let mut layers = Layers::default();
    layers
        .add_toml("missed_heartbeats = 4294967295", Source::Default)
        .expect("parse");
    assert_eq!(layers.resolve().expect("fits").missed_heartbeats, u32::MAX);
}

#[test]
fn every_key_is_read_from_the_environment() {
    // Each key's own error, or its changed value, proves the variable reached it.
    for def in KEYS {
        let var = format!("{ENV_PREFIX}{}", def.name.to_ascii_uppercase());
        let mut layers = Layers::default();
        layers
            .add_env(env_of(&[(var.as_str(), "\u{7}not valid\u{7}")]))
            .expect("env");
        match layers.resolve() {
            Err(e) => assert!(e.to_string().contains(&var), "{}: {e}", def.name),
            // Free text is accepted: then it must have changed the configuration.
            Ok(c) => assert_ne!(c, Config::defaults().expect("defaults"), "{}", def.name),
        }
    }
}

#[test]
fn printed_default_file_parses_to_the_defaults() {
    let mut layers = Layers::default();
    layers
        .add_toml(&Config::default_file(), Source::Default)
        .expect("default file parses");
    assert_eq!(
        layers.resolve().expect("resolve"),
        Config::defaults().expect("defaults")
    );
    for def in KEYS {
        assert!(
            Config::default_file().contains(def.name),
            "{} missing",
            def.name
        );
    }
}

#[test]
fn the_jwt_key_is_never_shown() {
    let key = "a-key-that-must-stay-secret-0123456789";
    let mut layers = Layers::default();
    layers
        .add_env(env_of(&[("SORCHA_PEER_JWT_KEY", key)]))
        .expect("env");
    let c = layers.resolve().expect("resolve");
    assert_eq!(c.jwt_key.as_ref().map(Secret::expose), Some(key));
    assert!(!format!("{c:?}").contains(key));
    assert!(!format!("{:?}", c.jwt_key).contains(key));
    assert!(!Config::default_file().contains(key));
    // Errors about it name the key and its source, never the value.
    for (toml, problem) in [
        ("jwt_key = \"short-secret\"", "at least 32 bytes"),
        ("jwt_key = 123456789", "expected text"),
    ] {
        let mut layers = Layers::default();
        layers.add_toml(toml, Source::Default).expect("parse");
        let err = layers.resolve().expect_err(toml).to_string();
        assert!(err.contains("`jwt_key`") && err.contains(problem), "{err}");
        assert!(
            !err.contains("short-secret") && !err.contains("123456789"),
            "{err}"
        );
    }
    let mut layers = Layers::default();
    layers
        .add_toml(
            &format!("jwt_key = \"{key}\"\njwt_key_file = \"/k\""),
            Source::Default,
        )
        .expect("parse");
    let err = layers.resolve().expect_err("both").to_string();
    assert!(
        err.contains("`jwt_key_file`") && err.contains("not both"),
        "{err}"
    );
    let mut layers = Layers::default();
    layers
        .add_toml("jwt_issuer = \"https://issuer\"", Source::Default)
        .expect("parse");
    let err = layers
        .resolve()
        .expect_err("issuer without key")
        .to_string();
    assert!(
        err.contains("`jwt_issuer`") && err.contains("no JWT key"),
        "{err}"
    );
}

#[test]
fn admin_tls_needs_both_files() {
    for (toml, key) in [
        ("admin_tls_cert_file = \"/c.pem\"", "admin_tls_cert_file"),
        ("admin_tls_key_file = \"/k.pem\"", "admin_tls_key_file"),
    ] {
        let mut layers = Layers::default();
        layers.add_toml(toml, Source::Default).expect("parse");
        let err = layers.resolve().expect_err(toml).to_string();
        assert!(
            err.contains(&format!("`{key}`")) && err.contains("both or neither"),
            "{err}"
        );
    }
    let mut layers = Layers::default();
    layers
        .add_toml(
            "admin_tls_cert_file = \"/c.pem\"\nadmin_tls_key_file = \"/k.pem\"",
            Source::Default,
        )
        .expect("parse");
    let c = layers.resolve().expect("both");
    assert_eq!(c.admin_tls_cert_file, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.admin_tls_key_file, Some(PathBuf::from("/k.pem")));
}

#[test]
fn open_admin_networks_are_cidrs_or_addresses() {
    let c = Config::defaults().expect("defaults");
    assert_eq!(
        c.admin_open_cidrs,
        vec![
            "127.0.0.0/8".parse::<ipnet::IpNet>().expect("net"),
            "::1/128".parse().expect("net")
        ]
    );
    let mut layers = Layers::default();
    layers
        .add_env(env_of(&[(
            "SORCHA_PEER_ADMIN_OPEN_CIDRS",
            "10.0.0.0/8, 192.0.2.7, fd00::/8",
        )]))
        .expect("env");
    let c = layers.resolve().expect("resolve");
    assert_eq!(
        c.admin_open_cidrs,
        vec![
            "10.0.0.0/8".parse::<ipnet::IpNet>().expect("net"),
            "192.0.2.7/32".parse().expect("net"),
            "fd00::/8".parse().expect("net"),
        ]
    );
    let mut layers = Layers::default();
    layers
        .add_toml("admin_open_cidrs = []", Source::Default)
        .expect("parse");
    assert!(
        layers
            .resolve()
            .expect("resolve")
            .admin_open_cidrs
            .is_empty()
    );
    let mut layers = Layers::default();
    layers
        .add_toml("admin_open_cidrs = [\"10.0.0.0/33\"]", Source::Default)
        .expect("parse");
    let err = layers.resolve().expect_err("bad net").to_string();
    assert!(
        err.contains("`admin_open_cidrs`") && err.contains("10.0.0.0/33"),
        "{err}"
    );
}

#[test]
fn database_passwords_are_redacted() {
    assert_eq!(
        redact_url("postgres://peer:s3cret@db.local:5432/peer"),
        "postgres://peer:***@db.local:5432/peer"
    );
    let mut c = Config::defaults().expect("defaults");
    c.database_url = Some("postgres://peer:s3cret@db/peer".into());
    assert!(!format!("{c:?}").contains("s3cret"));
    assert!(!c.storage_description().contains("s3cret"));
}
