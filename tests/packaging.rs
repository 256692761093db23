//! Packaging tests: builds the .deb and .rpm with `scripts/build-packages`
//! around the teleport-upgrade binary cargo just built, then checks their
//! contents, metadata, maintainer scripts, systemd units, lintian/rpmlint,
//! the cron line, and a real install/upgrade/remove/purge of the .deb into a
//! throwaway dpkg root.
//!
//! Needs (Debian package names): dpkg-dev (dpkg-deb, dpkg-gencontrol,
//! dpkg-shlibdeps), rpm (rpmbuild, rpm), systemd (systemd-analyze,
//! systemctl), lintian, rpmlint. Missing dpkg-dev/rpm fail the tests with the
//! package to install; missing systemd-analyze, lintian or rpmlint skip only
//! that check, with a message. SKIP_PACKAGING_TESTS=1 skips everything.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

#[path = "packaging/contents.rs"]
mod contents;
#[path = "packaging/keep_edits.rs"]
mod keep_edits;
#[path = "containers/v1_updater.rs"]
mod v1_updater;
#[allow(unused_imports)]
use contents::*;
#[path = "packaging/lint.rs"]
mod lint;
#[allow(unused_imports)]
use lint::*;
#[path = "packaging/lifecycle.rs"]
mod lifecycle;
#[allow(unused_imports)]
use lifecycle::*;
#[path = "packaging/release.rs"]
mod release;
#[allow(unused_imports)]
use release::*;
#[path = "packaging/licences.rs"]
mod licences;
#[allow(unused_imports)]
use licences::*;

const PKG: &str = "teleport-ent-updater";
const BIN: &str = env!("CARGO_BIN_EXE_teleport-upgrade");

struct Built {
    dir: PathBuf,
    deb: PathBuf,
    rpm: PathBuf,
    /// The binary has `man` / `completions` subcommands, so the packages must
    /// contain the man page / completions.
    expect_man: bool,
    expect_completions: bool,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn skip_all() -> bool {
    if std::env::var("SKIP_PACKAGING_TESTS")
        .map(|v| v == "1")
        .unwrap_or(false)
    {
        eprintln!("SKIP: SKIP_PACKAGING_TESTS=1, packaging test not run");
        return true;
    }
    false
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Does `teleport-upgrade --help` list this subcommand?
fn binary_has_subcommand(name: &str) -> bool {
    let out = run(Command::new(BIN).arg("--help"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines().any(|l| {
        let t = l.trim_start();
        t == name || t.starts_with(&format!("{name} "))
    })
}

/// The work directory lives as long as the test process (it is held by a
/// static), so earlier runs' directories are removed here: those whose
/// process is gone.
fn remove_stale_dirs(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("packaging-")
            .and_then(|p| p.parse::<u32>().ok())
        {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut missing = Vec::new();
        for (tool, pkg) in [
            ("dpkg-deb", "dpkg"),
            ("dpkg-gencontrol", "dpkg-dev"),
            ("dpkg-shlibdeps", "dpkg-dev"),
            ("rpmbuild", "rpm"),
            ("rpm", "rpm"),
        ] {
            if !have(tool) {
                missing.push(format!("{tool} (apt-get install {pkg})"));
            }
        }
        assert!(
            missing.is_empty(),
            "packaging tests need these tools: {} (or set SKIP_PACKAGING_TESTS=1)",
            missing.join(", ")
        );

        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_dirs(&tmp);
        let dir = tmp.join(format!("packaging-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let out_dir = dir.join("out");
        let out = run(Command::new("bash")
            .arg(repo().join("scripts/build-packages"))
            .arg("--out")
            .arg(&out_dir)
            .arg("--binary")
            .arg(BIN)
            .arg("--fast"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "build-packages failed:\n{stdout}\n{stderr}");
        // Show the build's warnings (e.g. missing man page) in the test log.
        for line in stderr.lines().filter(|l| l.starts_with('#')) {
            eprintln!("{line}");
        }
        let paths: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
        assert_eq!(paths.len(), 2, "build-packages should print two paths, printed:\n{stdout}");
        let deb = paths.iter().find(|p| p.extension().is_some_and(|e| e == "deb")).expect("no .deb").clone();
        let rpm = paths.iter().find(|p| p.extension().is_some_and(|e| e == "rpm")).expect("no .rpm").clone();
        assert!(deb.is_file() && rpm.is_file());

        let expect_man = binary_has_subcommand("man");
        let expect_completions = binary_has_subcommand("completions");
        if !expect_man || !expect_completions {
            eprintln!(
                "NOTE: teleport-upgrade has no `{}` subcommand yet: the packages are checked WITHOUT {}",
                if expect_man { "completions" } else { "man" },
                if expect_man { "completions" } else { "the man page" }
            );
        }
        Built { dir, deb, rpm, expect_man, expect_completions }
    })
}

/// Debian/RPM version of the crate version (SemVer pre-release "-" -> "~").
fn pkg_version() -> String {
    env!("CARGO_PKG_VERSION").replacen('-', "~", 1)
}

/// The epoch both packages carry: above every Teleport release version.
const EPOCH: &str = "1";

/// The .deb's full version, `1:X.Y.Z`.
fn deb_version() -> String {
    format!("{EPOCH}:{}", pkg_version())
}

fn deb_expected_files(b: &Built) -> BTreeSet<String> {
    let mut files: BTreeSet<String> = [
        "/etc/cron.d/teleport-upgrade",
        "/etc/teleport-upgrade.d/README",
        "/etc/needrestart/conf.d/teleport-ent-updater.conf",
        "/etc/default/teleport-upgrade",
        "/usr/lib/systemd/system/teleport-upgrade.service",
        "/usr/lib/systemd/system/teleport-upgrade.timer",
        "/usr/lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf",
        "/usr/sbin/teleport-upgrade",
        "/usr/share/doc/teleport-ent-updater/changelog.gz",
        "/usr/share/lintian/overrides/teleport-ent-updater",
        "/usr/share/doc/teleport-ent-updater/copyright",
        "/usr/share/doc/teleport-ent-updater/third-party-licenses.txt",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The operators' guides, which --help and the man page point to.
    for guide in operator_guides() {
        files.insert(format!("/usr/share/doc/teleport-ent-updater/{guide}"));
    }
    if b.expect_man {
        files.insert("/usr/share/man/man8/teleport-upgrade.8.gz".into());
    }
    if b.expect_completions {
        files.insert("/usr/share/bash-completion/completions/teleport-upgrade".into());
        files.insert("/usr/share/zsh/vendor-completions/_teleport-upgrade".into());
        files.insert("/usr/share/fish/vendor_completions.d/teleport-upgrade.fish".into());
    }
    files
}

/// The same content, at the RPM distributions' paths.
fn rpm_expected_files(b: &Built) -> BTreeSet<String> {
    deb_expected_files(b)
        .into_iter()
        .filter(|f| !f.ends_with("changelog.gz") && !f.contains("/lintian/"))
        .map(|f| {
            if let Some(name) = f
                .strip_prefix("/usr/share/doc/teleport-ent-updater/")
                .filter(|n| *n == "copyright" || *n == "third-party-licenses.txt")
            {
                format!("/usr/share/licenses/teleport-ent-updater/{name}")
            } else if f == "/usr/share/zsh/vendor-completions/_teleport-upgrade" {
                "/usr/share/zsh/site-functions/_teleport-upgrade".into()
            } else {
                f
            }
        })
        .collect()
}

/// The file names of docs/operators/*.md, which both packages ship.
fn operator_guides() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repo().join("docs/operators"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .collect();
    names.sort();
    assert!(names.iter().any(|n| n == "exit-codes.md"), "{names:?}");
    names
}

/// `dpkg-deb -c`: (mode, owner, path) of every entry.
fn deb_listing(deb: &Path) -> Vec<(String, String, String)> {
    run_ok(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() >= 6, "odd dpkg-deb -c line: {l}");
            let path = f[5].trim_start_matches('.').to_string();
            (f[0].to_string(), f[1].to_string(), path)
        })
        .collect()
}
