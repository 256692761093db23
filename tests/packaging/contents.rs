//! Part of `tests/packaging.rs` (see there).

use super::*;

#[test]
pub(crate) fn deb_contains_exactly_the_expected_files() {
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

    // conffiles: exactly the cron file, the README, the needrestart
    // configuration and the unit's environment file.
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
            "/etc/needrestart/conf.d/teleport-ent-updater.conf",
            "/etc/default/teleport-upgrade"
        ])
    );
    assert!(ctl.join("md5sums").is_file(), "no md5sums");
}

#[test]
pub(crate) fn deb_control_fields() {
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
pub(crate) fn rpm_contains_the_same_files() {
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
        "/etc/default",
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
            "/etc/needrestart/conf.d/teleport-ent-updater.conf",
            "/etc/default/teleport-upgrade"
        ]),
        "{flags}"
    );
    let any_config: Vec<&str> = flags
        .lines()
        .filter(|l| l.rsplit(' ').next().unwrap().contains('c'))
        .collect();
    assert_eq!(any_config.len(), 4, "config files: {any_config:?}");
}

/// Every maintainer script / scriptlet of both packages, as (name, text).
pub(crate) fn maintainer_scripts(b: &Built) -> Vec<(String, String)> {
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
pub(crate) fn maintainer_scripts_never_touch_the_agent_service() {
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
pub(crate) fn extract_deb(b: &Built, name: &str) -> PathBuf {
    let dir = b.dir.join(name);
    let _ = fs::remove_dir_all(&dir);
    run_ok(Command::new("dpkg-deb").arg("-x").arg(&b.deb).arg(&dir));
    dir
}

#[test]
pub(crate) fn systemd_units_verify() {
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
    // The egress proxy comes from the environment file the package ships,
    // every line of it commented out (it sets nothing until edited).
    assert!(service.contains("\nEnvironmentFile=-/etc/default/teleport-upgrade\n"));
    let default = fs::read_to_string(root.join("etc/default/teleport-upgrade")).unwrap();
    assert!(default.contains("#HTTPS_PROXY="), "{default}");
    assert!(
        default
            .lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "{default}"
    );
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
