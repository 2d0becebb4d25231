//! `examples/k8s/deployment.yaml`: the shutdown fits in the grace period.
//! The phases are read from the manifest itself, so changing one number
//! without the others fails here, not in a cluster.

use std::collections::HashMap;

/// How long tower-drain gives cut requests to unwind (`UNWIND`).
const UNWIND_SECS: u64 = 1;
/// How long `tower_drain::serve` gives connections still open after the
/// drain before it drops them (its default close timeout); the cleanup runs
/// after.
const SERVER_CLOSE_SECS: u64 = 1;

/// `key: value` and `- name: K` / `value: "V"` pairs, in file order. Enough
/// for this manifest; not a YAML parser.
fn settings(manifest: &str) -> HashMap<String, u64> {
    let mut found = HashMap::new();
    let mut env_name: Option<String> = None;
    let mut in_sleep = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.trim_start_matches("- ").split_once(':') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        match key {
            "name" => env_name = Some(value.to_owned()),
            "value" => {
                if let (Some(name), Ok(n)) = (env_name.take(), value.parse()) {
                    found.insert(name, n);
                }
            }
            "sleep" => in_sleep = true,
            "seconds" if in_sleep => {
                found.insert("preStop sleep".to_owned(), value.parse().unwrap());
                in_sleep = false;
            }
            "terminationGracePeriodSeconds" => {
                found.insert(key.to_owned(), value.parse().unwrap());
            }
            _ => {}
        }
    }
    found
}

#[test]
fn the_shutdown_phases_fit_in_the_grace_period() {
    let manifest = include_str!("../k8s/deployment.yaml");
    let found = settings(manifest);
    let get = |key: &str| -> u64 {
        *found
            .get(key)
            .unwrap_or_else(|| panic!("{key} not in the manifest: {found:?}"))
    };
    let grace = get("terminationGracePeriodSeconds");
    let needed = get("preStop sleep")
        + get("LAME_DUCK_SECS")
        + get("DRAIN_DEADLINE_SECS")
        + UNWIND_SECS
        + SERVER_CLOSE_SECS
        + get("CLEANUP_DEADLINE_SECS");
    assert!(
        needed < grace,
        "the shutdown needs {needed} s, the grace period is {grace} s"
    );
    assert!(
        manifest.contains(&format!("= terminationGracePeriodSeconds        {grace} s")),
        "the comment's sum names the grace period"
    );
}

#[test]
fn the_probes_hit_routes_the_drain_exempts() {
    let manifest = include_str!("../k8s/deployment.yaml");
    let example = include_str!("../axum-streaming/main.rs");
    for path in ["/readyz", "/livez"] {
        assert!(manifest.contains(&format!("path: {path}")), "{path} probed");
        assert!(
            example.contains(&format!("\"{path}\"")),
            "{path} served and exempt"
        );
    }
}
