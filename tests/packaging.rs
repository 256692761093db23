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

fn deb_expected_files(b: &Built) -> BTreeSet<String> {
    let mut files: BTreeSet<String> = [
        "/etc/cron.d/teleport-upgrade",
        "/etc/teleport-upgrade.d/README",
        "/lib/systemd/system/teleport-upgrade.service",
        "/lib/systemd/system/teleport-upgrade.timer",
        "/lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf",
        "/usr/sbin/teleport-upgrade",
        "/usr/share/doc/teleport-ent-updater/changelog.Debian.gz",
        "/usr/share/doc/teleport-ent-updater/copyright",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
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
        .filter(|f| !f.ends_with("changelog.Debian.gz"))
        .map(|f| {
            if let Some(rest) = f.strip_prefix("/lib/systemd/") {
                format!("/usr/lib/systemd/{rest}")
            } else if f == "/usr/share/doc/teleport-ent-updater/copyright" {
                "/usr/share/licenses/teleport-ent-updater/copyright".into()
            } else if f == "/usr/share/zsh/vendor-completions/_teleport-upgrade" {
                "/usr/share/zsh/site-functions/_teleport-upgrade".into()
            } else {
                f
            }
        })
        .collect()
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

    // conffiles: exactly the cron file and the README.
    let ctl = b.dir.join("deb-control");
    let _ = fs::remove_dir_all(&ctl);
    run_ok(Command::new("dpkg-deb").arg("-e").arg(&b.deb).arg(&ctl));
    let conffiles = fs::read_to_string(ctl.join("conffiles")).unwrap();
    let conffiles: BTreeSet<&str> = conffiles.lines().collect();
    assert_eq!(
        conffiles,
        BTreeSet::from([
            "/etc/cron.d/teleport-upgrade",
            "/etc/teleport-upgrade.d/README"
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
    assert_eq!(field("Version"), pkg_version());
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
        info.contains(&format!(" Version: {}\n", pkg_version())),
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
    let owned_dirs = BTreeSet::from([
        "/etc/teleport-upgrade.d".to_string(),
        "/usr/lib/systemd/system/teleport.service.d".to_string(),
    ]);
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
            "/etc/teleport-upgrade.d/README"
        ]),
        "{flags}"
    );
    let any_config: Vec<&str> = flags
        .lines()
        .filter(|l| l.rsplit(' ').next().unwrap().contains('c'))
        .collect();
    assert_eq!(any_config.len(), 2, "config files: {any_config:?}");
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
            // Not even in a comment: a plain grep finds nothing.
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
                    !code.contains("restart") || code.contains("try-restart \"$tu_timer\""),
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
        fs::read_to_string(root.join("lib/systemd/system/teleport-upgrade.service")).unwrap();
    assert!(service.contains("ExecStart=/usr/sbin/teleport-upgrade run\n"));
    fs::write(
        units.join("teleport-upgrade.service"),
        service.replace("/usr/sbin/teleport-upgrade", bin.to_str().unwrap()),
    )
    .unwrap();
    fs::copy(
        root.join("lib/systemd/system/teleport-upgrade.timer"),
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
        root.join("lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf"),
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
    let out = run(Command::new("lintian").arg("--no-cfg").arg(&b.deb));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("lintian:\n{text}");
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    // lintian exits 2 when it could not run at all (1 = tags found).
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "lintian did not run: {text}"
    );
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
    assert_eq!(status(&root), format!("ii {}", pkg_version()));
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
    let newer_version = format!("{}+test1", pkg_version());
    fs::write(
        unpacked.join("DEBIAN/control"),
        control.replace(
            &format!("Version: {}\n", pkg_version()),
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
        .join("lib/systemd/system/teleport-upgrade.timer")
        .exists());
    assert!(!root
        .join("lib/systemd/system/teleport.service.d/teleport-upgrader-env.conf")
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
    assert_eq!(status(&root), format!("ii {}", pkg_version()));
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
