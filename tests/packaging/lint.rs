//! Part of `tests/packaging.rs` (see there).

use super::*;

/// lintian's findings on `deb` (run by `lintian`, e.g. the host's, or one
/// in another root through chroot): no error and no warning (each warning
/// the package cannot fix is overridden, with its reason, in
/// packaging/lintian-overrides).
pub(crate) fn assert_lintian_clean(what: &str, lintian: &mut Command) {
    let out = run(lintian);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{what}:\n{text}");
    let found: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    assert!(
        found.is_empty(),
        "{what}: errors or warnings:\n{}",
        found.join("\n")
    );
    // lintian exits 2 when it could not run at all (1 = tags found).
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{what} did not run: {text}"
    );
}

#[test]
pub(crate) fn lintian_reports_no_errors() {
    if skip_all() {
        return;
    }
    if !have("lintian") {
        eprintln!("SKIP: lintian not installed (apt-get install lintian): .deb not linted");
        return;
    }
    let b = built();
    assert_lintian_clean(
        "lintian",
        Command::new("lintian").arg("--no-cfg").arg(&b.deb),
    );
}

/// Debian 13's lintian (aliased-location and the other checks bookworm's
/// lacks), in a trixie root made by scripts/lintian-root.
#[test]
pub(crate) fn lintian_of_debian_13_reports_nothing() {
    if skip_all() {
        return;
    }
    let root = PathBuf::from(
        std::env::var("TU_LINTIAN13_ROOT")
            .unwrap_or_else(|_| "/var/cache/teleport-ent-updater-lintian/trixie".into()),
    );
    if !root.join("usr/bin/lintian").exists() {
        eprintln!(
            "SKIP: no Debian 13 lintian in {} (scripts/lintian-root makes it, ~7 min)",
            root.display()
        );
        return;
    }
    let b = built();
    let inside = format!("tmp/packaging-{}.deb", std::process::id());
    fs::copy(&b.deb, root.join(&inside)).unwrap();
    let mut lintian = Command::new("chroot");
    lintian
        .arg(&root)
        .args(["lintian", "--no-cfg"])
        .arg(format!("/{inside}"));
    assert_lintian_clean("lintian (Debian 13)", &mut lintian);
    let _ = fs::remove_file(root.join(&inside));
}

#[test]
pub(crate) fn rpmlint_reports_no_errors() {
    if skip_all() {
        return;
    }
    if !have("rpmlint") {
        eprintln!("SKIP: rpmlint not installed (apt-get install rpmlint): .rpm not linted");
        return;
    }
    let b = built();
    let out = run(Command::new("rpmlint")
        .arg("-r")
        .arg(repo().join("rpm/teleport-ent-updater.rpmlintrc"))
        .arg(&b.rpm));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("rpmlint:\n{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.contains(": E: ")).collect();
    assert!(errors.is_empty(), "rpmlint errors:\n{}", errors.join("\n"));
    assert!(text.contains(" 0 errors"), "rpmlint summary: {text}");
}
