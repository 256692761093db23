//! Part of `tests/packaging.rs` (see there).

use super::*;

/// The crates linked into the binary, as `cargo tree` sees them (normal
/// dependencies only, no path packages): (name, version, licence).
pub(crate) fn linked_crates() -> Vec<(String, String, String)> {
    let out = run_ok(
        Command::new(env!("CARGO"))
            .current_dir(repo())
            .args(["tree", "--locked", "-e", "normal", "--prefix", "none"])
            .args(["--target", "x86_64-unknown-linux-gnu", "-p", PKG])
            .args(["-f", "{p}\t{l}"]),
    );
    let mut crates: Vec<(String, String, String)> = out
        .lines()
        .filter(|l| !l.contains("(/") && !l.contains("(*)"))
        .filter_map(|l| {
            let (p, lic) = l.split_once('\t')?;
            let mut words = p.split_whitespace();
            let name = words.next()?.to_string();
            let version = words.next()?.trim_start_matches('v').to_string();
            Some((name, version, lic.trim().to_string()))
        })
        .collect();
    crates.sort();
    crates.dedup();
    crates
}

/// The SPDX identifiers of a licence expression (`MIT OR Apache-2.0`,
/// old `MIT/Apache-2.0`).
pub(crate) fn licence_ids(expr: &str) -> Vec<String> {
    expr.replace(['(', ')', '/'], " ")
        .split_whitespace()
        .filter(|w| !["OR", "AND", "WITH", "LLVM-exception"].contains(w))
        .map(String::from)
        .collect()
}

/// Both packages carry the licence notice of every crate in the binary,
/// Debian's copyright names each crate and has a License paragraph for each
/// licence, and rpm's License: field lists every licence.
#[test]
pub(crate) fn both_packages_carry_every_linked_crates_licence() {
    if skip_all() {
        return;
    }
    let b = built();
    let crates = linked_crates();
    assert!(crates.len() > 50, "cargo tree found only {crates:?}");
    let deb_root = extract_deb(b, "licence-root");
    let doc = deb_root.join("usr/share/doc/teleport-ent-updater");
    let deb_notices = fs::read_to_string(doc.join("third-party-licenses.txt")).unwrap();
    let copyright = fs::read_to_string(doc.join("copyright")).unwrap();
    let rpm_root = b.dir.join("licence-rpm");
    let _ = fs::remove_dir_all(&rpm_root);
    fs::create_dir_all(&rpm_root).unwrap();
    let cpio = run(Command::new("sh")
        .current_dir(&rpm_root)
        .arg("-c")
        .arg(format!(
            "rpm2cpio '{}' | cpio -idm --quiet",
            b.rpm.display()
        )));
    assert!(cpio.status.success(), "rpm2cpio: {cpio:?}");
    let lic = rpm_root.join("usr/share/licenses/teleport-ent-updater");
    let rpm_notices = fs::read_to_string(lic.join("third-party-licenses.txt")).unwrap();
    assert_eq!(deb_notices, rpm_notices, "the two packages' notices differ");
    let rpm_license = run_ok(
        Command::new("rpm")
            .args(["-qp", "--qf", "%{LICENSE}"])
            .arg(&b.rpm),
    );
    for (name, version, licence) in &crates {
        assert!(
            deb_notices.contains(&format!(" {name} {version} (")),
            "no licence text of {name} {version} in third-party-licenses.txt"
        );
        assert!(
            deb_notices.contains(&format!("  {name} {version}: ")),
            "{name} {version} not in the summary of third-party-licenses.txt"
        );
        assert!(
            copyright.contains(&format!("Files: cargo-registry/{name}-{version}/*")),
            "debian copyright has no paragraph for {name} {version}"
        );
        for id in licence_ids(licence) {
            assert!(
                rpm_license.contains(&id),
                "rpm License: lacks {id} ({name}): {rpm_license}"
            );
            let debian = match id.as_str() {
                "MIT" => "Expat".to_string(),
                "BSD-3-Clause" => "BSD-3-clause".to_string(),
                other => other.to_string(),
            };
            assert!(
                id == "Apache-2.0" || copyright.contains(&format!("\nLicense: {debian}\n")),
                "debian copyright has no License: {debian} paragraph ({name})"
            );
        }
    }
    assert!(rpm_license.starts_with("Apache-2.0 AND "), "{rpm_license}");
}

/// Copy `program` (from the host) and the libraries it needs into `root`,
/// so that rpm's chrooted scriptlets can run it.
pub(crate) fn copy_into_root(root: &Path, program: &str) {
    let host = which_host(program);
    let dest = root.join(host.strip_prefix("/").unwrap());
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::copy(&host, &dest).unwrap();
    let ldd = run_ok(Command::new("ldd").arg(&host));
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let d = root.join(lib.trim_start_matches('/'));
        if !d.exists() {
            fs::create_dir_all(d.parent().unwrap()).unwrap();
            fs::copy(lib, &d).unwrap();
        }
    }
}

pub(crate) fn which_host(program: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/sbin"] {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return fs::canonicalize(p).unwrap();
        }
    }
    panic!("{program} not found on the host");
}

/// Every directory under `root` (symbolic links not followed).
pub(crate) fn dirs_under(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                let p = e.path();
                out.insert(p.strip_prefix(root).unwrap().display().to_string());
                todo.push(p);
            }
        }
    }
    out
}

/// `rpm -i` then `rpm -e` (scriptlets run, chrooted, with a shell and the
/// tools they use) on a minimal host root: every directory the package
/// created is gone again. The root holds what an RPM distribution's
/// `filesystem` package provides, and no systemd, cron or completions.
#[test]
pub(crate) fn rpm_erase_leaves_no_directory_it_created() {
    if skip_all() {
        return;
    }
    let b = built();
    let root = b.dir.join("rpm-erase-root");
    let _ = fs::remove_dir_all(&root);
    for d in [
        "etc",
        "usr/sbin",
        "usr/bin",
        "usr/lib",
        "usr/share/man/man8",
        "usr/share/doc",
        "usr/share/licenses",
        "var/lib/rpm",
        "var/tmp",
        "run",
        "tmp",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    // Merged /usr, as every current RPM distribution: /bin -> usr/bin.
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    for p in ["sh", "mkdir", "rm", "rmdir"] {
        copy_into_root(&root, p);
    }
    let sh = which_host("sh");
    if !root.join("usr/bin/sh").exists() {
        std::os::unix::fs::symlink(&sh, root.join("usr/bin/sh")).unwrap();
    }
    let rpm = |args: &[&str]| {
        run(Command::new("rpm")
            .arg("--root")
            .arg(&root)
            .args(["--dbpath", "/var/lib/rpm"])
            .args(args))
    };
    let init = rpm(&["--initdb"]);
    assert!(init.status.success(), "{init:?}");
    let before = dirs_under(&root);
    let inst = rpm(&["-i", "--nodeps", b.rpm.to_str().unwrap()]);
    assert!(inst.status.success(), "rpm -i: {inst:?}");
    let said = String::from_utf8_lossy(&inst.stderr);
    assert!(
        !said.contains("scriptlet failed"),
        "the scriptlets did not run: {said}"
    );
    assert!(root.join("usr/sbin/teleport-upgrade").is_file());
    assert!(root.join("usr/share/bash-completion/completions").is_dir() || !b.expect_completions);
    let erase = rpm(&["-e", PKG]);
    assert!(erase.status.success(), "rpm -e: {erase:?}");
    let said = String::from_utf8_lossy(&erase.stderr);
    assert!(
        !said.contains("scriptlet failed"),
        "the scriptlets did not run: {said}"
    );
    let after = dirs_under(&root);
    let left: Vec<&String> = after.difference(&before).collect();
    assert!(
        left.is_empty(),
        "rpm -e left directories it created: {left:?}"
    );
}
