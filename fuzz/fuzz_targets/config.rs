//! Config files and environment values (`config`): a TOML file, then `SORCHA_PEER_*`
//! variables, resolved into a checked `Config`, and the unknown-variable check. The input is
//! the file, a NUL byte, then `NAME=value` lines.
//!
//! Checks: resolving is deterministic; a value reads the same from the environment as from the
//! file (both layers hold text); the JWT key never shows in `Debug`.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sorcha_peer::config::env::{known_vars, unknown_vars};
use sorcha_peer::config::{Config, ENV_PREFIX, KEYS, Layers, Source};

fuzz_target!(|data: &[u8]| {
    let (file, env) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(file), Ok(env)) = (std::str::from_utf8(file), std::str::from_utf8(env)) else {
        return;
    };
    let vars: BTreeMap<String, String> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let _ = unknown_vars(vars.keys().map(String::as_str), &known_vars(&[]));

    let resolved = resolve(file, &vars);
    assert_eq!(resolve(file, &vars), resolved, "resolving is deterministic");
    if let Ok(config) = &resolved {
        if let Some(key) = &config.jwt_key {
            let shown = format!("{config:?}");
            let secret = key.expose();
            assert!(
                secret.len() < 8 || !shown.contains(secret),
                "the JWT key is never shown"
            );
        }
    }

    // Each variable alone, from the environment and as file text: the same outcome.
    for (name, value) in &vars {
        // Only the exact variable of a key is read (`SORCHA_PEER_JWT_KEY`, not `..._JWT_KeY`).
        let Some(key) = KEYS
            .iter()
            .map(|k| k.name)
            .find(|k| *name == format!("{ENV_PREFIX}{}", k.to_ascii_uppercase()))
        else {
            continue;
        };
        let one = BTreeMap::from([(name.clone(), value.clone())]);
        let from_env = resolve("", &one);
        let as_file = format!("{key} = {}", toml::Value::String(value.clone()));
        let from_file = resolve(&as_file, &BTreeMap::new());
        assert_eq!(from_env.is_ok(), from_file.is_ok(), "{name}={value:?}");
        if let (Ok(a), Ok(b)) = (&from_env, &from_file) {
            assert!(a == b, "{name}={value:?} reads alike from both layers");
        }
    }
});

fn layers(file: &str, vars: &BTreeMap<String, String>) -> Option<Layers> {
    let mut layers = Layers::default();
    layers
        .add_toml(file, Source::File("fuzz.toml".into()))
        .ok()?;
    layers.add_env(|name| vars.get(name).cloned()).ok()?;
    Some(layers)
}

fn resolve(file: &str, vars: &BTreeMap<String, String>) -> Result<Config, ()> {
    layers(file, vars).ok_or(())?.resolve().map_err(|_| ())
}
