//! Part of `tests/refusal_matrix.rs` (see there).

use super::*;

// ---- apt's sources and configuration, on apt alone ----
//
// Every refusal leaves the agent unchanged and exits 3.

pub(crate) fn assert_refused(w: &AptWorld, needle: &str) {
    w.schedule_in_window();
    let r = w.run(&["run"]);
    r.expect(3);
    assert!(
        r.stderr().to_lowercase().contains(&needle.to_lowercase()),
        "logs lack {needle:?}\n{}",
        r.stderr()
    );
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.2"),
        "a refusal must leave the agent unchanged"
    );
    assert_eq!(w.state()["last_run"]["result"], "refused");
}

#[test]
pub(crate) fn repository_signed_by_an_unknown_key_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    let other = testkit::gpg::Key::generate(&w.dir.path().join("other"), "Mallory <m@example.com>");
    w.repo.sign_with(Some(&other));
    assert_refused(&w, "NO_PUBKEY");
}

#[test]
pub(crate) fn unsigned_repository_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.repo.sign_with(None);
    assert_refused(&w, "signed");
}

#[test]
pub(crate) fn tampered_package_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.repo
        .tamper(&format!("{PKG}_15.4.3_{}.deb", testkit::deb::host_arch()));
    assert_refused(&w, "mismatch");
}

#[test]
pub(crate) fn stale_lists_do_not_hide_a_key_gone_wrong() {
    // Yesterday the key worked and the lists were fetched; today the
    // repository is signed by another key. apt-get update alone would only
    // warn and use the old lists.
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    w.run(&["run"]).expect(0);
    w.run(&["force"]).expect(0); // already at target
    w.set_target("15.4.2");
    w.sight_lower_target(); // a lower target is installed on its second check
    let other = testkit::gpg::Key::generate(&w.dir.path().join("other"), "Mallory <m@example.com>");
    w.repo.sign_with(Some(&other));
    let r = w.run(&["run"]);
    r.expect(3);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
pub(crate) fn a_source_that_switches_verification_off_is_refused() {
    for opt in ["trusted=yes", "allow-insecure=yes", "allow-weak=yes"] {
        let w = AptWorld::new("15.4.2", "15.4.3");
        w.root.write(
            "/etc/apt/sources.list.d/teleport.list",
            format!(
                "deb [signed-by={KEYRING} {opt}] {}/ bookworm stable/v15\n",
                w.repo_server.url()
            )
            .as_bytes(),
        );
        assert_refused(&w, opt);
        assert_eq!(
            w.repo_server.requests().len(),
            0,
            "{opt}: refused before any package operation"
        );
    }
}

#[test]
pub(crate) fn a_source_without_signed_by_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.root.write(
        "/etc/apt/sources.list.d/teleport.list",
        format!("deb {}/ bookworm stable/v15\n", w.repo_server.url()).as_bytes(),
    );
    assert_refused(&w, "not restricted to a keyring");
}

#[test]
pub(crate) fn apt_configuration_that_allows_unauthenticated_is_refused() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.root.write(
        "/etc/apt/apt.conf.d/99insecure",
        b"APT::Get::AllowUnauthenticated \"true\";\n",
    );
    assert_refused(&w, "99insecure:1");
}
