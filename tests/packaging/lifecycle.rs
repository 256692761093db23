//! Part of `tests/packaging.rs` (see there).

use super::*;

/// The cron line: does nothing under systemd, runs the updater (after the
/// jitter sleep) into syslog otherwise. Run with stubs for the updater,
/// logger, shuf and sleep, and a stand-in for /run/systemd/system.
#[test]
pub(crate) fn cron_line_defers_to_systemd() {
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
            "echo \"ran $* $HTTPS_PROXY\" >> {}/updater.log; echo updater-output",
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
    // The environment file: its proxy reaches the updater.
    let default = t.join("default-teleport-upgrade");
    fs::write(&default, "# the proxy\nHTTPS_PROXY=http://egress:3128\n").unwrap();
    let command = fields[6]
        .replace("/run/systemd/system", systemd_dir.to_str().unwrap())
        .replace("/etc/default/teleport-upgrade", default.to_str().unwrap())
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
        "ran run http://egress:3128\n"
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
pub(crate) fn deb_install_upgrade_remove_purge_in_a_throwaway_root() {
    if skip_all() {
        return;
    }
    let b = built();
    let r = DpkgRoot::new(b, "dpkg-root");
    let root = &r.root;
    let timer_link = root.join("etc/systemd/system/timers.target.wants/teleport-upgrade.timer");
    let systemctl = have("systemctl");
    if !systemctl {
        eprintln!("NOTE: systemctl not installed: timer enable/disable on disk not checked");
    }

    // Nothing may escape to the host: the scripts honour DPKG_ROOT.
    let host_state = Path::new("/var/lib/teleport-upgrade/.timer-disabled-by-package-removal");
    let host_state_before = host_state.exists();

    // 1. Fresh install.
    r.dpkg(&["-i", b.deb.to_str().unwrap()]);
    assert_eq!(r.version(), format!("ii {}", deb_version()));
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
    let newer_version = upgrade_keeps_a_disabled_timer(b, &r, &timer_link, systemctl);
    assert!(cfg.join("endpoint").is_file() && cfg.join("schedule").is_file());
    assert!(state.join("last-run").is_file());

    // 3. Remove.
    remove_keeps_configuration_and_state(&r, &timer_link, &newer_version);

    // 4. Re-install from the config-files state: enabled again.
    r.dpkg(&["-i", b.deb.to_str().unwrap()]);
    assert_eq!(r.version(), format!("ii {}", deb_version()));
    if systemctl {
        assert!(
            timer_link.symlink_metadata().is_ok(),
            "re-install after remove did not enable the timer"
        );
    }

    // 5. Purge.
    purge_keeps_the_operators_files(&r, &timer_link);

    assert_eq!(
        host_state.exists(),
        host_state_before,
        "the maintainer scripts touched the host"
    );
}

/// Step 2: upgrade to a newer version, after the administrator disabled the
/// timer: the upgrade keeps it disabled (the configuration files are the
/// caller's to check). Returns the newer version.
fn upgrade_keeps_a_disabled_timer(
    b: &Built,
    r: &DpkgRoot,
    timer_link: &Path,
    systemctl: bool,
) -> String {
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
        fs::remove_file(timer_link).unwrap();
    }
    r.dpkg(&["-i", newer.to_str().unwrap()]);
    assert_eq!(r.version(), format!("ii {newer_version}"));
    if systemctl {
        assert!(
            timer_link.symlink_metadata().is_err(),
            "the upgrade re-enabled a timer the administrator disabled"
        );
    }
    newer_version
}

/// Step 3: remove: files go, configuration and state stay, timer disabled.
fn remove_keeps_configuration_and_state(r: &DpkgRoot, timer_link: &Path, newer_version: &str) {
    let root = &r.root;
    let cfg = root.join("etc/teleport-upgrade.d");
    let state = root.join("var/lib/teleport-upgrade");
    r.dpkg(&["-r", PKG]);
    assert_eq!(r.version(), format!("rc {newer_version}"));
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
}

/// Step 5: purge: the state goes, the operator's and agent's files stay.
fn purge_keeps_the_operators_files(r: &DpkgRoot, timer_link: &Path) {
    let root = &r.root;
    let cfg = root.join("etc/teleport-upgrade.d");
    let state = root.join("var/lib/teleport-upgrade");
    r.dpkg(&["-P", PKG]);
    assert_eq!(r.version(), "");
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
}

/// A throwaway dpkg root, maintainer scripts run chrootless (DPKG_ROOT).
pub(crate) struct DpkgRoot {
    root: PathBuf,
}

impl DpkgRoot {
    pub(crate) fn new(b: &Built, name: &str) -> DpkgRoot {
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

    pub(crate) fn dpkg(&self, args: &[&str]) -> String {
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

    pub(crate) fn version(&self) -> String {
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

    pub(crate) fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }
}

pub(crate) fn dpkg_gt(a: &str, b: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", a, "gt", b])
        .status()
        .unwrap()
        .success()
}

/// rpm's own comparison (rpm's Lua `rpm.vercmp`): 1, 0 or -1.
pub(crate) fn rpm_vercmp(a: &str, b: &str) -> i32 {
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
pub(crate) fn our_version_sorts_above_every_teleport_release() {
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
pub(crate) fn deb_installs_over_teleports_shell_updater() {
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
