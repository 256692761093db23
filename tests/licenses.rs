//! The licence allow-list: every crate linked into the binary is under a
//! licence tools/licenses/collect.py allows, and a crate under another one
//! fails the check (and so scripts/build-packages). The packages' notices
//! are checked in tests/packaging.rs.

use std::path::Path;
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn collect(args: &[&str]) -> Output {
    Command::new("python3")
        .arg(repo().join("tools/licenses/collect.py"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("python3")
}

fn metadata() -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_linked_crate_has_an_allowed_licence() {
    let out = collect(&["check"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same metadata with one linked crate relicensed: the check fails and
/// names it. So does a crate that declares no licence.
#[test]
fn a_licence_outside_the_allow_list_fails_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    for (crate_name, licence) in [
        ("semver", serde_json::json!("GPL-3.0-only")),
        ("semver", serde_json::json!("MIT AND SSPL-1.0")),
        ("semver", serde_json::Value::Null),
    ] {
        let mut meta = metadata();
        let pkg = meta["packages"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|p| p["name"] == crate_name)
            .expect("semver is a dependency");
        pkg["license"] = licence.clone();
        pkg["license_file"] = serde_json::Value::Null;
        pkg["manifest_path"] = serde_json::json!("/nonexistent/Cargo.toml");
        let file = tmp.path().join("meta.json");
        std::fs::write(&file, serde_json::to_vec(&meta).unwrap()).unwrap();
        let out = collect(&["--metadata", file.to_str().unwrap(), "check"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{licence} passed the check");
        assert!(err.contains(crate_name), "{licence}: {err}");
    }
}
