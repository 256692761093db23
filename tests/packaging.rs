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

#[path = "packaging/keep_edits.rs"]
mod keep_edits;
#[path = "containers/v1_updater.rs"]
mod v1_updater;

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

#[test]
fn deb_contains_exactly_the_expected_files() {
    if skip_all() {
        return;
    }
    let b = built();
    let listing = deb_listing(&b.deb);
    let files: BTreeSet<String> = listing
        .iter()
        .filter(|(m, _, _)| m.starts_with('-'))
        .map(|(_, _, p)| p.clone())
        .collect();
    assert_eq!(files, deb_expected_files(b), "files in the .deb");
    for (mode, owner, path) in &listing {
        assert_eq!(owner, "root/root", "{path} owned by {owner}");
        let want = if mode.starts_with('d') {
            "drwxr-xr-x"
        } else if path == "/usr/sbin/teleport-upgrade" {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!(mode, want, "mode of {path}");
    }
    // The operator's and the agent's files are never shipped.
    for f in [
        "endpoint",
        "package",
        "installer",
        "schedule",
        "insecure",
        "debug",
        "mark-unhealthy",
    ] {
        let p = format!("/etc/teleport-upgrade.d/{f}");
        assert!(
            !listing.iter().any(|(_, _, q)| *q == p),
            "{p} must not be shipped"
        );
    }
    // Nothing in the state directory either.
    assert!(
        !listing.iter().any(|(_, _, p)| p.starts_with("/var/")),
        "the .deb ships files under /var"
    );

    // conffiles: exactly the cron file, the README and the needrestart
    // configuration.
    let ctl = b.dir.join("deb-control");
    let _ = fs::remove_dir_all(&ctl);
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&b.deb).arg(&ctl));
    let conffiles = fs::read_to_string(ctl.join("conffiles")).unwrap();
    let conffiles: BTreeSet<&str> = conffiles.lines().collect();
    assert_eq!(
        conffiles,
        BTreeSet::from([
            "/etc/cron.d/teleport-upgrade",
            "/etc/teleport-upgrade.d/README",
            "/etc/needrestart/conf.d/teleport-ent-updater.conf"
        ])
    );
    assert!(ctl.join("md5sums").is_file(), "no md5sums");
}

#[test]
fn deb_control_fields() {
    if skip_all() {
        return;
    }
    let b = built();
    let field = |name: &str| {
        run_ok(Command::new("dpkg-deb").arg("-f").arg(&b.deb).arg(name))
            .trim()
            .to_string()
    };
    let arch = run_ok(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string();
    assert_eq!(field("Package"), PKG);
    assert_eq!(field("Version"), deb_version());
    assert_eq!(field("Architecture"), arch);
    assert!(
        field("Depends").contains("ca-certificates"),
        "Depends: {}",
        field("Depends")
    );
    assert_eq!(
        b.deb.file_name().unwrap().to_string_lossy(),
        format!("{PKG}_{}_{arch}.deb", pkg_version()),
        "file name"
    );
    // dpkg-deb -I must show the same.
    let info = run_ok(Command::new("dpkg-deb").arg("-I").arg(&b.deb));
    assert!(info.contains(&format!(" Package: {PKG}\n")), "{info}");
    assert!(
        info.contains(&format!(" Version: {}\n", deb_version())),
        "{info}"
    );
    assert!(info.contains(&format!(" Architecture: {arch}\n")), "{info}");
}

#[test]
fn rpm_contains_the_same_files() {
    if skip_all() {
        return;
    }
    let b = built();
    let listed: BTreeSet<String> = run_ok(Command::new("rpm").arg("-qlp").arg(&b.rpm))
        .lines()
        .map(String::from)
        .collect();
    // rpm -ql also lists the directories the package owns.
    let mut owned_dirs: BTreeSet<String> = [
        "/etc/teleport-upgrade.d",
        "/etc/cron.d",
        "/etc/needrestart",
        "/etc/needrestart/conf.d",
        "/usr/lib/systemd",
        "/usr/lib/systemd/system",
        "/usr/lib/systemd/system/teleport.service.d",
        "/usr/share/doc/teleport-ent-updater",
        "/usr/share/licenses/teleport-ent-updater",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if b.expect_completions {
        owned_dirs.extend(
            [
                "/usr/share/bash-completion",
                "/usr/share/bash-completion/completions",
                "/usr/share/zsh",
                "/usr/share/zsh/site-functions",
                "/usr/share/fish",
                "/usr/share/fish/vendor_completions.d",
            ]
            .map(String::from),
        );
    }
    let files: BTreeSet<String> = listed.difference(&owned_dirs).cloned().collect();
    assert_eq!(files, rpm_expected_files(b), "files in the .rpm");
    assert!(
        owned_dirs.is_subset(&listed),
        "the .rpm should own {owned_dirs:?}"
    );

    let q = |fmt: &str| {
        run_ok(
            Command::new("rpm")
                .arg("-qp")
                .arg("--qf")
                .arg(fmt)
                .arg(&b.rpm),
        )
    };
    assert_eq!(q("%{NAME}"), PKG);
    assert_eq!(q("%{EPOCH}"), EPOCH);
    assert_eq!(q("%{VERSION}"), pkg_version());
    assert_eq!(q("%{RELEASE}"), "1");
    let arch = q("%{ARCH}");
    assert_eq!(
        b.rpm.file_name().unwrap().to_string_lossy(),
        format!("{PKG}-{}-1.{arch}.rpm", pkg_version()),
        "file name"
    );
    // %config(noreplace) exactly for the operator's files.
    let flags = q("[%{FILENAMES} %{FILEFLAGS:fflags}\n]");
    let config: BTreeSet<&str> = flags
        .lines()
        .filter(|l| l.ends_with(" cn"))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        config,
        BTreeSet::from([
            "/etc/cron.d/teleport-upgrade",
            "/etc/teleport-upgrade.d/README",
            "/etc/needrestart/conf.d/teleport-ent-updater.conf"
        ]),
        "{flags}"
    );
    let any_config: Vec<&str> = flags
        .lines()
        .filter(|l| l.rsplit(' ').next().unwrap().contains('c'))
        .collect();
    assert_eq!(any_config.len(), 3, "config files: {any_config:?}");
}

/// Every maintainer script / scriptlet of both packages, as (name, text).
fn maintainer_scripts(b: &Built) -> Vec<(String, String)> {
    let ctl = b.dir.join("deb-control-scripts");
    let _ = fs::remove_dir_all(&ctl);
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&b.deb).arg(&ctl));
    let mut scripts = Vec::new();
    for name in ["preinst", "postinst", "prerm", "postrm"] {
        if let Ok(text) = fs::read_to_string(ctl.join(name)) {
            scripts.push((format!("deb {name}"), text));
        }
    }
    let rpm_scripts = run_ok(Command::new("rpm").arg("-qp").arg("--scripts").arg(&b.rpm));
    scripts.push(("rpm scriptlets".into(), rpm_scripts));
    scripts
}

#[test]
fn maintainer_scripts_never_touch_the_agent_service() {
    if skip_all() {
        return;
    }
    let b = built();
    let scripts = maintainer_scripts(b);
    assert!(
        scripts.len() >= 4,
        "expected postinst, prerm, postrm and the rpm scriptlets"
    );
    for (name, text) in &scripts {
        for (i, line) in text.lines().enumerate() {
            let code = line.trim();
            // Not even in a comment: a plain grep finds nothing, but for the
            // line that names the directory of the shell updater's timer
            // link (tu_take_over_timer), which only removes that link, and
            // the one that names the shell updater's drop-in under /etc
            // (tu_take_over_dropin / tu_hand_back), which only renames it.
            if line.trim_start()
                == "tu_wants_dir=\"$tu_root/etc/systemd/system/teleport.service.wants\""
                || line.trim_start()
                    == "tu_v1_dropin=\"$tu_root/etc/systemd/system/teleport.service.d/teleport-upgrader-env.conf\""
            {
                continue;
            }
            assert!(
                !line.contains("teleport.service"),
                "mentions the agent unit: {name}:{}: {line}",
                i + 1
            );
            if code.starts_with('#') || code.is_empty() {
                continue;
            }
            let at = format!("{name}:{}: {line}", i + 1);
            assert!(
                !code.contains("teleport.service"),
                "mentions the agent unit: {at}"
            );
            assert!(
                !code.contains("invoke-rc.d") && !code.contains("service teleport"),
                "{at}"
            );
            let words: Vec<String> = code
                .split(|c: char| c.is_whitespace() || ";(){}|&".contains(c))
                .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string())
                .collect();
            assert!(
                !words
                    .iter()
                    .any(|w| w == "teleport" || w == "teleport.service"),
                "names the agent: {at}"
            );
            if words.iter().any(|w| w == "systemctl") {
                // Every systemctl call acts on the timer, reloads, or is the
                // wrapper/probe of the shared library.
                assert!(
                    code.contains("$tu_timer")
                        || code.contains("daemon-reload")
                        || code.contains("\"$@\"")
                        || code.contains("command -v systemctl"),
                    "systemctl call that is not about the timer: {at}"
                );
                assert!(
                    !code.contains("restart")
                        || code.contains("try-restart \"$tu_timer\"")
                        || code.contains("systemctl restart \"$tu_timer\""),
                    "{at}"
                );
            }
        }
        // They are valid POSIX sh.
        if name.starts_with("deb") {
            let path = b.dir.join(format!("script-{}", name.replace(' ', "-")));
            fs::write(&path, text).unwrap();
            run_ok(Command::new("sh").arg("-n").arg(&path));
        }
    }
    // The rpm scriptlets carry the shared logic too.
    let rpm = &scripts.last().unwrap().1;
    for f in ["tu_install", "tu_upgrade", "tu_remove", "tu_after_remove"] {
        assert!(rpm.contains(f), "rpm scriptlets lack {f}");
    }
}

/// Extract the .deb into a directory (files only, no maintainer scripts run).
fn extract_deb(b: &Built, name: &str) -> PathBuf {
    let dir = b.dir.join(name);
    let _ = fs::remove_dir_all(&dir);
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&b.deb).arg(&dir));
    dir
}

#[test]
fn systemd_units_verify() {
    if skip_all() {
        return;
    }
    if !have("systemd-analyze") {
        eprintln!(
            "SKIP: systemd-analyze not installed (apt-get install systemd): units not verified"
        );
        return;
    }
    let b = built();
    let root = extract_deb(b, "verify-root");
    let units = b.dir.join("verify-units");
    let _ = fs::remove_dir_all(&units);
    fs::create_dir_all(units.join("teleport.service.d")).unwrap();
    // ExecStart must exist: point it at the packaged binary.
    let bin = root.join("usr/sbin/teleport-upgrade");
    let service =
        fs::read_to_string(root.join("usr/lib/systemd/system/teleport-upgrade.service")).unwrap();
    assert!(service.contains("ExecStart=/usr/sbin/teleport-upgrade run\n"));
    fs::write(
        units.join("teleport-upgrade.service"),
        service.replace("/usr/sbin/teleport-upgrade", bin.to_str().unwrap()),
    )
    .unwrap();
    fs::copy(
        root.join("usr/lib/systemd/system/teleport-upgrade.timer"),
        units.join("teleport-upgrade.timer"),
    )
    .unwrap();
    // A stand-in agent unit, to load the drop-in with it.
    fs::write(
        units.join("teleport.service"),
        "[Unit]\nDescription=stand-in agent\n[Service]\nExecStart=/bin/sleep infinity\n",
    )
    .unwrap();
    fs::copy(
        root.join("usr/lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf"),
        units.join("teleport.service.d/teleport-upgrader-env.conf"),
    )
    .unwrap();
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .arg(units.join("teleport-upgrade.service"))
        .arg(units.join("teleport-upgrade.timer"))
        .arg(units.join("teleport.service"))
        .current_dir(&units));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    // Unknown keys and the like are only warnings: none may concern our units.
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("teleport") || l.contains(units.to_str().unwrap()))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify complained:\n{}",
        ours.join("\n")
    );

    // The cadence asked for: first run ~9 min after activation, then ~30 min.
    let timer = fs::read_to_string(units.join("teleport-upgrade.timer")).unwrap();
    for want in [
        "OnActiveSec=9min",
        "OnUnitActiveSec=30min",
        "RandomizedDelaySec=",
        "WantedBy=timers.target",
    ] {
        assert!(
            timer.lines().any(|l| l.starts_with(want)),
            "timer lacks {want}"
        );
    }
    let dropin =
        fs::read_to_string(units.join("teleport.service.d/teleport-upgrader-env.conf")).unwrap();
    assert!(dropin
        .lines()
        .any(|l| l == "Environment=TELEPORT_EXT_UPGRADER=unit"));
}

/// lintian's findings on `deb` (run by `lintian`, e.g. the host's, or one
/// in another root through chroot): no error and no warning (each warning
/// the package cannot fix is overridden, with its reason, in
/// packaging/lintian-overrides).
fn assert_lintian_clean(what: &str, lintian: &mut Command) {
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
fn lintian_reports_no_errors() {
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
fn lintian_of_debian_13_reports_nothing() {
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
fn rpmlint_reports_no_errors() {
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

/// The cron line: does nothing under systemd, runs the updater (after the
/// jitter sleep) into syslog otherwise. Run with stubs for the updater,
/// logger, shuf and sleep, and a stand-in for /run/systemd/system.
#[test]
fn cron_line_defers_to_systemd() {
    if skip_all() {
        return;
    }
    let b = built();
    let root = extract_deb(b, "cron-root");
    let cron = fs::read_to_string(root.join("etc/cron.d/teleport-upgrade")).unwrap();
    let jobs: Vec<&str> = cron
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.contains('='))
        .collect();
    assert_eq!(jobs.len(), 1, "one cron job expected: {jobs:?}");
    let fields: Vec<&str> = jobs[0].splitn(7, [' ', '\t']).collect();
    assert_eq!(fields.len(), 7, "m h dom mon dow user command: {}", jobs[0]);
    assert_eq!(fields[5], "root");
    assert!(
        !fields[6].contains('%'),
        "a % in a cron command is a newline"
    );
    assert!(fields[6].contains("[ -d /run/systemd/system ]"));

    let t = b.dir.join("cron-test");
    let _ = fs::remove_dir_all(&t);
    let stubs = t.join("bin");
    fs::create_dir_all(&stubs).unwrap();
    let stub = |name: &str, body: &str| {
        let p = stubs.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    };
    stub(
        "teleport-upgrade",
        &format!(
            "echo \"ran $*\" >> {}/updater.log; echo updater-output",
            t.display()
        ),
    );
    stub(
        "logger",
        &format!("cat | sed \"s/^/logger[$*] /\" >> {}/syslog", t.display()),
    );
    stub("shuf", "echo 17");
    stub(
        "sleep",
        &format!("echo \"slept $*\" >> {}/sleep.log", t.display()),
    );
    let systemd_dir = t.join("run-systemd-system");
    let command = fields[6]
        .replace("/run/systemd/system", systemd_dir.to_str().unwrap())
        .replace(
            "/usr/sbin/teleport-upgrade",
            stubs.join("teleport-upgrade").to_str().unwrap(),
        );
    let run_cron = || {
        let path = format!("{}:/usr/bin:/bin", stubs.display());
        let out = run(Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .env("PATH", path));
        assert!(
            out.status.success(),
            "cron command failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // systemd running: nothing happens.
    fs::create_dir_all(&systemd_dir).unwrap();
    run_cron();
    assert!(
        !t.join("updater.log").exists(),
        "the cron job ran the updater although systemd runs"
    );
    assert!(!t.join("sleep.log").exists());

    // No systemd: jitter, then `run`, output to syslog with our tag.
    fs::remove_dir(&systemd_dir).unwrap();
    run_cron();
    assert_eq!(
        fs::read_to_string(t.join("updater.log")).unwrap(),
        "ran run\n"
    );
    assert_eq!(
        fs::read_to_string(t.join("sleep.log")).unwrap(),
        "slept 17\n"
    );
    let syslog = fs::read_to_string(t.join("syslog")).unwrap();
    assert!(
        syslog.contains("-t teleport-upgrade") && syslog.contains("updater-output"),
        "{syslog}"
    );
}

/// Installs, upgrades, removes, re-installs and purges the .deb in a
/// throwaway dpkg root, running the real maintainer scripts (chrootless, with
/// DPKG_ROOT set, no systemd: exactly the container/image-build case).
#[test]
fn deb_install_upgrade_remove_purge_in_a_throwaway_root() {
    if skip_all() {
        return;
    }
    let b = built();
    let root = b.dir.join("dpkg-root");
    let _ = fs::remove_dir_all(&root);
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let admindir = root.join("var/lib/dpkg");
    let dpkg = |args: &[&str]| -> String {
        let mut c = Command::new("dpkg");
        c.arg(format!("--root={}", root.display()))
            .arg(format!("--admindir={}", admindir.display()))
            .arg("--force-script-chrootless")
            .arg("--force-not-root")
            // ca-certificates and libc6 are not in this empty root.
            .arg("--force-depends")
            .arg("--log=/dev/null")
            .args(args)
            // The chrootless scripts use the host's tools.
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        let shown = format!("{c:?}");
        let out = run(&mut c);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{shown} failed:\n{text}");
        text
    };
    let status = |root: &Path| -> String {
        let out = run(Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                root.join("var/lib/dpkg").display()
            ))
            .arg("-W")
            .arg("-f=${db:Status-Abbrev}${Version}")
            .arg(PKG));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let timer_link = root.join("etc/systemd/system/timers.target.wants/teleport-upgrade.timer");
    let systemctl = have("systemctl");
    if !systemctl {
        eprintln!("NOTE: systemctl not installed: timer enable/disable on disk not checked");
    }

    // Nothing may escape to the host: the scripts honour DPKG_ROOT.
    let host_state = Path::new("/var/lib/teleport-upgrade/.timer-disabled-by-package-removal");
    let host_state_before = host_state.exists();

    // 1. Fresh install.
    dpkg(&["-i", b.deb.to_str().unwrap()]);
    assert_eq!(status(&root), format!("ii {}", deb_version()));
    for f in deb_expected_files(b) {
        assert!(
            root.join(f.trim_start_matches('/')).is_file(),
            "{f} not installed"
        );
    }
    if systemctl {
        assert!(
            timer_link.symlink_metadata().is_ok(),
            "the timer was not enabled in the root"
        );
    }

    // The operator and the agent write their files; the updater its state.
    let cfg = root.join("etc/teleport-upgrade.d");
    fs::write(
        cfg.join("endpoint"),
        "teleport.example.com:443/v1/webapi/automaticupgrades/channel/default\n",
    )
    .unwrap();
    fs::write(cfg.join("schedule"), "# generated by teleport\n").unwrap();
    let state = root.join("var/lib/teleport-upgrade");
    fs::create_dir_all(&state).unwrap();
    fs::write(state.join("last-run"), "x").unwrap();

    // 2. Upgrade to a newer version, after the administrator disabled the
    // timer: the upgrade keeps it disabled and keeps every config file.
    let newer = b.dir.join("newer.deb");
    let unpacked = b.dir.join("newer-tree");
    let _ = fs::remove_dir_all(&unpacked);
    run_ok(
        Command::new("dpkg-deb")
            .arg("-R")
            .arg(&b.deb)
            .arg(&unpacked),
    );
    let control = fs::read_to_string(unpacked.join("DEBIAN/control")).unwrap();
    let newer_version = format!("{}+test1", deb_version());
    fs::write(
        unpacked.join("DEBIAN/control"),
        control.replace(
            &format!("Version: {}\n", deb_version()),
            &format!("Version: {newer_version}\n"),
        ),
    )
    .unwrap();
    run_ok(
        Command::new("dpkg-deb")
            .arg("--root-owner-group")
            .arg("--build")
            .arg(&unpacked)
            .arg(&newer),
    );
    if systemctl {
        fs::remove_file(&timer_link).unwrap();
    }
    dpkg(&["-i", newer.to_str().unwrap()]);
    assert_eq!(status(&root), format!("ii {newer_version}"));
    if systemctl {
        assert!(
            timer_link.symlink_metadata().is_err(),
            "the upgrade re-enabled a timer the administrator disabled"
        );
    }
    assert!(cfg.join("endpoint").is_file() && cfg.join("schedule").is_file());
    assert!(state.join("last-run").is_file());

    // 3. Remove: files go, configuration and state stay, timer disabled.
    dpkg(&["-r", PKG]);
    assert_eq!(status(&root), format!("rc {newer_version}"));
    assert!(!root.join("usr/sbin/teleport-upgrade").exists());
    assert!(!root
        .join("usr/lib/systemd/system/teleport-upgrade.timer")
        .exists());
    assert!(!root
        .join("usr/lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf")
        .exists());
    assert!(
        timer_link.symlink_metadata().is_err(),
        "the timer is still enabled after remove"
    );
    assert!(
        cfg.join("endpoint").is_file(),
        "remove deleted /etc/teleport-upgrade.d/endpoint"
    );
    assert!(
        cfg.join("schedule").is_file(),
        "remove deleted /etc/teleport-upgrade.d/schedule"
    );
    assert!(cfg.join("README").is_file(), "remove deleted a conffile");
    assert!(
        root.join("etc/cron.d/teleport-upgrade").is_file(),
        "remove deleted a conffile"
    );
    assert!(state.join("last-run").is_file(), "remove deleted the state");

    // 4. Re-install from the config-files state: enabled again.
    dpkg(&["-i", b.deb.to_str().unwrap()]);
    assert_eq!(status(&root), format!("ii {}", deb_version()));
    if systemctl {
        assert!(
            timer_link.symlink_metadata().is_ok(),
            "re-install after remove did not enable the timer"
        );
    }

    // 5. Purge: the state goes, the operator's and agent's files stay.
    dpkg(&["-P", PKG]);
    assert_eq!(status(&root), "");
    assert!(!state.exists(), "purge left /var/lib/teleport-upgrade");
    assert!(
        !cfg.join("README").exists(),
        "purge left the README conffile"
    );
    assert!(
        !root.join("etc/cron.d/teleport-upgrade").exists(),
        "purge left the cron conffile"
    );
    assert!(
        cfg.join("endpoint").is_file(),
        "purge deleted the operator's endpoint"
    );
    assert!(
        cfg.join("schedule").is_file(),
        "purge deleted the agent's schedule"
    );
    assert!(timer_link.symlink_metadata().is_err());

    assert_eq!(
        host_state.exists(),
        host_state_before,
        "the maintainer scripts touched the host"
    );
}

/// A throwaway dpkg root, maintainer scripts run chrootless (DPKG_ROOT).
struct DpkgRoot {
    root: PathBuf,
}

impl DpkgRoot {
    fn new(b: &Built, name: &str) -> DpkgRoot {
        let root = b.dir.join(name);
        let _ = fs::remove_dir_all(&root);
        for d in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        DpkgRoot { root }
    }

    fn dpkg(&self, args: &[&str]) -> String {
        let mut c = Command::new("dpkg");
        c.arg(format!("--root={}", self.root.display()))
            .arg(format!(
                "--admindir={}",
                self.root.join("var/lib/dpkg").display()
            ))
            .arg("--force-script-chrootless")
            .arg("--force-not-root")
            .arg("--force-depends")
            .arg("--log=/dev/null")
            .args(args)
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        let shown = format!("{c:?}");
        let out = run(&mut c);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{shown} failed:\n{text}");
        text
    }

    fn version(&self) -> String {
        let out = run(Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                self.root.join("var/lib/dpkg").display()
            ))
            .arg("-W")
            .arg("-f=${db:Status-Abbrev}${Version}")
            .arg(PKG));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
}

fn dpkg_gt(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .unwrap()
        .success()
}

/// rpm's own comparison (rpm's Lua `rpm.vercmp`): 1, 0 or -1.
fn rpm_vercmp(a: &str, b: &str) -> i32 {
    let out = run_ok(
        Command::new("rpm")
            .arg("--eval")
            .arg(format!("%{{lua: print(rpm.vercmp(\"{a}\", \"{b}\"))}}")),
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("rpm.vercmp printed {out:?}"))
}

/// Our version sorts above every Teleport release version, on dpkg and on
/// rpm, so a routine upgrade from Teleport's repository never swaps
/// Teleport's shell updater (same package name) back in. The control
/// shows that without the epoch it would.
#[test]
fn our_version_sorts_above_every_teleport_release() {
    if skip_all() {
        return;
    }
    let b = built();
    let deb_v = run_ok(
        Command::new("dpkg-deb")
            .arg("-f")
            .arg(&b.deb)
            .arg("Version"),
    )
    .trim()
    .to_string();
    let rpm_evr = run_ok(
        Command::new("rpm")
            .arg("-qp")
            .arg("--qf")
            .arg("%{EPOCH}:%{VERSION}-%{RELEASE}")
            .arg(&b.rpm),
    );
    for teleport in [
        "15.4.3",
        "15.4.4",
        "16.0.0",
        "17.5.2",
        "99.99.99",
        "999.0.0-1",
    ] {
        assert!(dpkg_gt(&deb_v, teleport), "dpkg: {deb_v} <= {teleport}");
        assert_eq!(
            rpm_vercmp(&rpm_evr, &format!("{teleport}-1")),
            1,
            "rpm: {rpm_evr} <= {teleport}"
        );
        // Control: the same version without the epoch sorts below.
        assert!(!dpkg_gt(&pkg_version(), teleport));
        assert_eq!(
            rpm_vercmp(&format!("{}-1", pkg_version()), &format!("{teleport}-1")),
            -1
        );
    }
}

/// Installing ours over Teleport's shell updater (same name, 15.4.3, arch
/// all) in a dpkg root: the operator's /etc/teleport-upgrade.d stays, the
/// binary, units and drop-in are ours, the timer is taken over (enabled
/// through timers.target, its link under teleport.service.wants gone), and
/// removing ours removes nothing else.
#[test]
fn deb_installs_over_teleports_shell_updater() {
    if skip_all() {
        return;
    }
    let b = built();
    let r = DpkgRoot::new(b, "migration-root");
    let v1 = v1_updater::build_deb_for_dpkg_root("15.4.3", &b.dir.join("v1"));
    r.dpkg(&["-i", v1.to_str().unwrap()]);
    assert_eq!(r.version(), "ii 15.4.3");
    let wants_agent = r.path("/etc/systemd/system/teleport.service.wants/teleport-upgrade.timer");
    let wants_timers = r.path("/etc/systemd/system/timers.target.wants/teleport-upgrade.timer");
    let systemctl = have("systemctl");
    if systemctl {
        assert!(
            wants_agent.symlink_metadata().is_ok(),
            "the v1 stand-in did not enable its timer"
        );
    }
    // The operator's configuration and the agent's schedule.
    let cfg = r.path("/etc/teleport-upgrade.d");
    fs::create_dir_all(&cfg).unwrap();
    fs::write(
        cfg.join("endpoint"),
        "teleport.example.com:443/v1/webapi/automaticupgrades/channel/default\n",
    )
    .unwrap();
    fs::write(cfg.join("schedule"), "# generated by teleport\n1 2\n").unwrap();
    fs::write(cfg.join("package"), "teleport-ent\n").unwrap();

    let out = r.dpkg(&["-i", b.deb.to_str().unwrap()]);
    assert_eq!(r.version(), format!("ii {}", deb_version()));
    let bin = fs::read(r.path("/usr/sbin/teleport-upgrade")).unwrap();
    assert!(
        bin.starts_with(b"\x7fELF"),
        "/usr/sbin/teleport-upgrade is still the bash updater"
    );
    let timer =
        fs::read_to_string(r.path("/usr/lib/systemd/system/teleport-upgrade.timer")).unwrap();
    // Teleport's units under /lib are gone with its package: no second
    // teleport-upgrade.timer for systemd to find.
    for v1 in [
        "/lib/systemd/system/teleport-upgrade.timer",
        "/lib/systemd/system/teleport-upgrade.service",
        "/lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf",
    ] {
        assert!(!r.path(v1).exists(), "{v1} is left from Teleport's package");
    }
    assert!(
        timer.contains("OnUnitActiveSec=30min") && timer.contains("WantedBy=timers.target"),
        "{timer}"
    );
    let dropin = fs::read_to_string(
        r.path("/usr/lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf"),
    )
    .unwrap();
    assert!(
        !dropin.contains("TELEPORT_EXT_UPGRADER_VERSION=15.4.3"),
        "the v1 drop-in is still there: {dropin}"
    );
    // Teleport's drop-in under /etc (a conffile dpkg keeps) would override
    // ours: set aside, renamed, so that systemd no longer reads it.
    assert!(
        !r.path(v1_updater::DROPIN).exists(),
        "Teleport's drop-in is still in effect at {}",
        v1_updater::DROPIN
    );
    assert!(r
        .path(&format!(
            "{}.disabled-by-teleport-ent-updater",
            v1_updater::DROPIN
        ))
        .is_file());
    if systemctl {
        assert!(
            wants_agent.symlink_metadata().is_err(),
            "the v1 timer link is still there"
        );
        assert!(
            wants_timers.symlink_metadata().is_ok(),
            "our timer is not enabled"
        );
        assert!(out.contains("took over teleport-upgrade.timer"), "{out}");
    }
    for (f, want) in [
        (
            "endpoint",
            "teleport.example.com:443/v1/webapi/automaticupgrades/channel/default\n",
        ),
        ("schedule", "# generated by teleport\n1 2\n"),
        ("package", "teleport-ent\n"),
    ] {
        assert_eq!(
            fs::read_to_string(cfg.join(f)).unwrap(),
            want,
            "{f} changed"
        );
    }

    // Removing ours: our files go, the configuration stays.
    r.dpkg(&["-r", PKG]);
    assert!(!r.path("/usr/sbin/teleport-upgrade").exists());
    assert!(wants_timers.symlink_metadata().is_err());
    assert!(cfg.join("endpoint").is_file() && cfg.join("schedule").is_file());
}

// ---- the release packages: glibc floor, both architectures ----------------

/// The libraries a packaged binary may need.
const ALLOWED_NEEDED: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libutil.so.1",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

/// (NEEDED libraries, GLIBC_ versions required) of an ELF binary, read
/// with readelf.
fn dynamic_deps(bin: &Path) -> (Vec<String>, Vec<(u32, u32, u32)>) {
    let d = run_ok(Command::new("readelf").arg("-d").arg(bin));
    let needed = d
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next().map(String::from))
        .collect();
    let v = run_ok(Command::new("readelf").arg("-V").arg(bin));
    let mut versions: Vec<(u32, u32, u32)> = v
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|n| {
            let mut it = n.split('.').map(|x| x.parse::<u32>());
            let a = it.next()?.ok()?;
            let b = it.next().unwrap_or(Ok(0)).ok()?;
            let c = it.next().unwrap_or(Ok(0)).ok()?;
            Some((a, b, c))
        })
        .collect();
    versions.sort();
    versions.dedup();
    (needed, versions)
}

/// Fails on a GLIBC_ version above 2.17 or a library beyond the allowed set.
fn check_floor(what: &str, bin: &Path) -> String {
    let (needed, versions) = dynamic_deps(bin);
    assert!(
        !versions.is_empty(),
        "{what}: no GLIBC_ version at all: not read?"
    );
    let beyond: Vec<&String> = needed
        .iter()
        .filter(|n| !ALLOWED_NEEDED.contains(&n.as_str()))
        .collect();
    assert!(
        beyond.is_empty(),
        "{what} needs libraries beyond the allowed set: {beyond:?}"
    );
    let max = *versions.last().unwrap();
    assert!(
        max <= (2, 17, 0),
        "{what} requires GLIBC_{}.{}.{}: above the 2.17 floor",
        max.0,
        max.1,
        max.2
    );
    format!(
        "{what}: NEEDED {needed:?}, highest GLIBC_{}.{}",
        max.0, max.1
    )
}

/// The floor check catches what it is there for: the binary cargo built
/// for the tests (Debian 12's glibc) is above it.
#[test]
fn floor_check_refuses_a_binary_built_against_a_newer_glibc() {
    let (_, versions) = dynamic_deps(Path::new(BIN));
    assert!(
        versions.last().is_some_and(|v| *v > (2, 17, 0)),
        "the test binary needs no glibc above 2.17: the control proves nothing here ({versions:?})"
    );
    let r = std::panic::catch_unwind(|| check_floor("test binary", Path::new(BIN)));
    assert!(r.is_err(), "check_floor accepted a binary above the floor");
}

struct Release {
    dir: PathBuf,
    /// (rpm arch, .deb, .rpm)
    packages: Vec<(String, PathBuf, PathBuf)>,
}

/// `scripts/build-packages` as a release builds them: both architectures,
/// cargo-zigbuild against glibc 2.17 (in target/release-build, so later
/// runs are incremental).
fn release() -> &'static Release {
    static R: OnceLock<Release> = OnceLock::new();
    R.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("release-packages");
        let _ = fs::remove_dir_all(&dir);
        let out = run(Command::new("bash")
            .arg(repo().join("scripts/build-packages"))
            .arg("--out")
            .arg(&dir)
            .arg("--fast")
            // Always target/release-build: never the directory cargo test holds.
            .env_remove("CARGO_TARGET_DIR"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "build-packages (release, x86_64 and aarch64) failed (scripts/deps installs the toolchain):\n{stdout}\n{}",
            stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        let paths: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
        assert_eq!(paths.len(), 4, "four packages expected:\n{stdout}");
        let mut packages = Vec::new();
        for (arch, deb_arch) in [("x86_64", "amd64"), ("aarch64", "arm64")] {
            let deb = paths.iter().find(|p| p.to_string_lossy().ends_with(&format!("_{deb_arch}.deb"))).unwrap_or_else(|| panic!("no {deb_arch} .deb:\n{stdout}")).clone();
            let rpm = paths.iter().find(|p| p.to_string_lossy().ends_with(&format!(".{arch}.rpm"))).unwrap_or_else(|| panic!("no {arch} .rpm:\n{stdout}")).clone();
            packages.push((arch.to_string(), deb, rpm));
        }
        Release { dir, packages }
    })
}

#[test]
fn release_binaries_have_the_glibc_2_17_floor_on_both_architectures() {
    if skip_all() {
        return;
    }
    let r = release();
    for (arch, deb, rpm) in &r.packages {
        let x = r.dir.join(format!("x-deb-{arch}"));
        let _ = fs::remove_dir_all(&x);
        run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&x));
        let bin = x.join("usr/sbin/teleport-upgrade");
        let machine = run_ok(Command::new("readelf").arg("-h").arg(&bin));
        let want = if arch == "x86_64" {
            "X86-64"
        } else {
            "AArch64"
        };
        assert!(
            machine.contains(want),
            "{}: not an {arch} binary:\n{machine}",
            deb.display()
        );
        eprintln!("{}", check_floor(&format!("{arch} .deb"), &bin));

        let y = r.dir.join(format!("x-rpm-{arch}"));
        let _ = fs::remove_dir_all(&y);
        fs::create_dir_all(&y).unwrap();
        run_ok(
            Command::new("sh")
                .arg("-c")
                .arg("rpm2cpio \"$1\" | cpio -idm --quiet")
                .arg("sh")
                .arg(rpm)
                .current_dir(&y),
        );
        eprintln!(
            "{}",
            check_floor(
                &format!("{arch} .rpm"),
                &y.join("usr/sbin/teleport-upgrade")
            )
        );
        assert_eq!(
            run_ok(
                Command::new("rpm")
                    .arg("-qp")
                    .arg("--qf")
                    .arg("%{ARCH}")
                    .arg(rpm)
            ),
            *arch
        );
    }
}

/// Dependencies that resolve everywhere: libc6 (>= 2.17) and libgcc by
/// either name, no libgpgme (loaded at run time, recommended under both
/// names: libgpgme11t64 on Debian 13 / Ubuntu 24.04, libgpgme11 before);
/// on rpm by soname and symbol version, nothing above GLIBC_2.17.
#[test]
fn release_package_dependencies_resolve_on_every_supported_distribution() {
    if skip_all() {
        return;
    }
    let r = release();
    for (arch, deb, rpm) in &r.packages {
        let field = |name: &str| {
            run_ok(Command::new("dpkg-deb").arg("-f").arg(deb).arg(name))
                .trim()
                .to_string()
        };
        let depends = field("Depends");
        let mut parts: Vec<&str> = depends.split(", ").collect();
        parts.sort();
        let mut want = vec!["ca-certificates", "libc6 (>= 2.17)"];
        if depends.contains("libgcc") {
            want.push("libgcc-s1 | libgcc1");
        }
        want.sort();
        assert_eq!(parts, want, "{arch} Depends: {depends}");
        assert!(!depends.contains("gpgme"), "{depends}");
        let recommends = field("Recommends");
        assert!(
            recommends.contains("libgpgme11t64 | libgpgme11"),
            "{arch} Recommends: {recommends}"
        );

        let requires = run_ok(Command::new("rpm").arg("-qp").arg("--requires").arg(rpm));
        for line in requires.lines() {
            assert!(!line.contains("gpgme"), "{arch} rpm requires {line}");
            if let Some(v) = line.split("(GLIBC_").nth(1) {
                let v = v.split(')').next().unwrap();
                let mut it = v.split('.').map(|x| x.parse::<u32>().unwrap());
                let t = (it.next().unwrap(), it.next().unwrap_or(0));
                assert!(t <= (2, 17), "{arch} rpm requires {line}");
            }
            if line.starts_with("lib") {
                assert!(
                    line.ends_with("(64bit)"),
                    "{arch}: not a 64-bit soname requirement: {line}"
                );
            }
        }
        assert!(
            requires
                .lines()
                .any(|l| l.starts_with("libc.so.6(GLIBC_2.17)(64bit)")),
            "{requires}"
        );
        let weak = run_ok(Command::new("rpm").arg("-qp").arg("--recommends").arg(rpm));
        assert!(
            weak.contains("libgpgme.so.11()(64bit)"),
            "{arch} rpm recommends: {weak}"
        );
    }
}

#[test]
fn release_packages_lint_clean_on_both_architectures() {
    if skip_all() {
        return;
    }
    let r = release();
    for (arch, deb, rpm) in &r.packages {
        if have("lintian") {
            assert_lintian_clean(
                &format!("lintian {arch}"),
                Command::new("lintian").arg("--no-cfg").arg(deb),
            );
        } else {
            eprintln!("SKIP: lintian not installed");
        }
        if have("rpmlint") {
            let out = run(Command::new("rpmlint")
                .arg("-r")
                .arg(repo().join("rpm/teleport-ent-updater.rpmlintrc"))
                .arg(rpm));
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            eprintln!("rpmlint {arch}:\n{text}");
            let errors: Vec<&str> = text.lines().filter(|l| l.contains(": E: ")).collect();
            assert!(
                errors.is_empty(),
                "rpmlint errors ({arch}):\n{}",
                errors.join("\n")
            );
            assert!(text.contains(" 0 errors"), "rpmlint summary: {text}");
        } else {
            eprintln!("SKIP: rpmlint not installed");
        }
    }
}

const QEMU: &str = "/usr/bin/qemu-aarch64-static";

/// The packaged aarch64 binary (extracted once) and the arm64 C library to
/// run it with under qemu user emulation.
fn aarch64_binary() -> (PathBuf, PathBuf) {
    static B: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    B.get_or_init(|| {
        assert!(
            Path::new(QEMU).exists(),
            "{QEMU} is missing (apt-get install qemu-user-static; scripts/deps)"
        );
        let r = release();
        let x = r.dir.join("x-aarch64-run");
        let _ = fs::remove_dir_all(&x);
        let (_, deb, _) = r.packages.iter().find(|p| p.0 == "aarch64").unwrap();
        run_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&x));
        // The arm64 C library scripts/deps fetched beside the aarch64 std.
        let cross = std::env::var_os("TU_CROSS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                    .join(".cache/teleport-ent-updater-cross")
            });
        let libc = fs::read_dir(&cross)
            .ok()
            .and_then(|rd| {
                rd.flatten()
                    .map(|e| e.path().join("libc"))
                    .find(|p| p.join("lib/ld-linux-aarch64.so.1").exists())
            })
            .unwrap_or_else(|| {
                panic!("no arm64 libc below {} (run scripts/deps)", cross.display())
            });
        (x.join("usr/sbin/teleport-upgrade"), libc)
    })
    .clone()
}

/// The aarch64 binary runs (under qemu user emulation here).
#[test]
fn release_aarch64_binary_runs_under_qemu() {
    if skip_all() {
        return;
    }
    let (bin, libc) = aarch64_binary();
    let out = run_ok(
        Command::new(QEMU)
            .arg("-L")
            .arg(&libc)
            .arg(&bin)
            .arg("version"),
    );
    assert!(
        out.starts_with(&format!("teleport-upgrade {}", env!("CARGO_PKG_VERSION"))),
        "{out}"
    );
}

/// The arm64 smoke row: the packaged aarch64 binary, run under qemu user
/// emulation, drives apt (the host's: qemu passes execve of a native
/// program to the kernel) in an alternate root with the agent 15.4.2
/// and a signed local repository offering 15.4.3: `version`, `dry-run`
/// (nothing changes) and a real `run` (15.4.3 installed and held).
/// An arm64 debootstrap root with its own apt would need binfmt_misc,
/// which this build machine does not offer (see tests/containers/README.md).
#[test]
fn arm64_smoke_the_aarch64_binary_updates_through_apt() {
    if skip_all() {
        return;
    }
    let (bin, libc) = aarch64_binary();
    let w = testkit::world::apt::AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    let run = |args: &[&str]| -> Output {
        let mut c = Command::new(QEMU);
        c.arg("-L")
            .arg(&libc)
            .arg(&bin)
            .arg("--root")
            .arg(w.root.path())
            .args(args)
            .env_remove("TELEPORT_UPGRADE_CONFIG")
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null());
        run(&mut c)
    };
    let text = |o: &Output| {
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
    };

    let v = run(&["version"]);
    assert!(
        v.status.success() && text(&v).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        text(&v)
    );

    let d = run(&["dry-run"]);
    assert!(d.status.success(), "dry-run failed:\n{}", text(&d));
    assert!(
        text(&d).contains("15.4.3"),
        "dry-run does not show the target:\n{}",
        text(&d)
    );
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.2"),
        "dry-run changed the agent"
    );

    let u = run(&["run"]);
    assert!(u.status.success(), "run failed:\n{}", text(&u));
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "not updated:\n{}",
        text(&u)
    );
    assert!(w.held(), "not held after the update");
    eprintln!("arm64 smoke (qemu user emulation):\n{}", text(&u));
}

/// The crates linked into the binary, as `cargo tree` sees them (normal
/// dependencies only, no path packages): (name, version, licence).
fn linked_crates() -> Vec<(String, String, String)> {
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
fn licence_ids(expr: &str) -> Vec<String> {
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
fn both_packages_carry_every_linked_crates_licence() {
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
fn copy_into_root(root: &Path, program: &str) {
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

fn which_host(program: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/sbin"] {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return fs::canonicalize(p).unwrap();
        }
    }
    panic!("{program} not found on the host");
}

/// Every directory under `root` (symbolic links not followed).
fn dirs_under(root: &Path) -> BTreeSet<String> {
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
fn rpm_erase_leaves_no_directory_it_created() {
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
