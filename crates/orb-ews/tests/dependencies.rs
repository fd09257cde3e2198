//! orb-ews must not depend on orb-engine, orb-store, orb-web or the emulators (its normal dependency tree).
//! Uses `cargo metadata --offline --filter-platform <host>` (no network: only the
//! packages this platform builds, which `cargo test` has already fetched, are needed).

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

const FORBIDDEN: &[&str] =
    &["orb-engine", "orb-store", "orb-web", "orb-emulators", "orb-graph", "orb-topdesk"];

#[test]
fn no_forbidden_orb_crates_in_the_normal_dependency_tree() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc).arg("-vV").output().expect("rustc -vV runs");
    let host = String::from_utf8(version.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--offline", "--format-version", "1", "--filter-platform", &host])
        .args(["--manifest-path", manifest])
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &serde_json::Value> =
        meta["resolve"]["nodes"].as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    let root = names.iter().find(|(_, n)| **n == "orb-ews").map(|(id, _)| *id).unwrap();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
            if normal {
                stack.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let tree: BTreeSet<&str> = seen.iter().map(|id| names[id]).collect();
    assert!(tree.contains("orb-core") && tree.contains("quick-xml"), "the walk found the tree: {tree:?}");
    for bad in FORBIDDEN {
        assert!(!tree.contains(bad), "orb-ews depends on {bad} (tree: {tree:?})");
    }
}
