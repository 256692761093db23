//! Part of `tests/refusal_matrix.rs` (see there).

use super::*;

// ---- enforcement (issue 14): what the plain package manager falls for,
// the updater refuses, also with its configuration audit switched off ----
//
// Each row runs three fresh roots: (1) the plain dnf/zypper, run by hand as
// an operator would, DOES install the unsigned or foreign 15.4.3: the
// weakening is real; (2) the updater refuses it (exit 3, database
// unchanged, the cause named); (3) the same with the audit switched off
// (`TELEPORT_UPGRADE_TEST_SKIP_AUDIT`, honoured by debug builds only): the
// options the updater forces on the command line refuse it alone.

/// The updater's run in `w`, with `env` added to the caller's environment.
pub(crate) fn run_with_env(w: &RpmWorld, args: &[&str], env: &[(String, String)]) -> Run {
    let mut c = world::command(w.root.path(), args);
    c.env_remove("TELEPORT_UPGRADE_TEST_SKIP_AUDIT");
    for (k, v) in env {
        c.env(k, v);
    }
    Run(c.output().unwrap())
}

/// The plain package manager in `w`'s root, without any option of the
/// updater's, installing 15.4.3 as an operator would (zypper refreshes
/// first: the fixture's repositories are not auto-refreshed).
pub(crate) fn plain_install(w: &RpmWorld, env: &[(String, String)]) -> String {
    plain_install_with(w, env, true)
}

/// [`plain_install`]; `host_key`: tell dnf where the root's key is on the
/// host (dnf reads gpgkey paths on the host even with --installroot).
pub(crate) fn plain_install_with(w: &RpmWorld, env: &[(String, String)], host_key: bool) -> String {
    let root = w.root.path().display().to_string();
    let mut outputs = String::new();
    let mut cmds: Vec<std::process::Command> = Vec::new();
    match w.pm {
        Pm::Dnf => {
            let mut c = w.root.command("dnf");
            c.args([
                "-y".to_string(),
                format!("--installroot={root}"),
                format!("--config={}", w.root.file("/etc/dnf/dnf.conf").display()),
                format!(
                    "--setopt=reposdir={}",
                    w.root.file("/etc/yum.repos.d").display()
                ),
                "install".into(),
                "teleport-ent-15.4.3".into(),
            ]);
            if host_key {
                // dnf reads gpgkey paths on the host even with
                // --installroot: name the root's key as a host would.
                c.arg(format!(
                    "--setopt=teleport.gpgkey=file://{}",
                    w.root.file(world::rpm::KEY_IN_ROOT).display()
                ));
            }
            cmds.push(c);
        }
        Pm::Zypper => {
            for args in [
                vec!["--non-interactive", "--root", &root, "refresh"],
                vec![
                    "--non-interactive",
                    "--root",
                    &root,
                    "install",
                    "--oldpackage",
                    "teleport-ent=15.4.3",
                ],
            ] {
                let mut c = w.root.command("zypper");
                // What zypper reads for this root unless told otherwise.
                c.env("ZYPP_CONF", w.root.file("/etc/zypp/zypp.conf"));
                c.args(args);
                cmds.push(c);
            }
        }
    }
    for mut c in cmds {
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(std::process::Stdio::null());
        let out = c.output().unwrap();
        outputs.push_str(&String::from_utf8_lossy(&out.stdout));
        outputs.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    w.root.end_gpg_agents();
    outputs
}

/// A weakening: how to set it up in a root, the environment of the caller,
/// what the audit's refusal names, what the enforcement's refusal names.
pub(crate) struct Weakening {
    pm: Pm,
    setup: fn(&RpmWorld),
    env: fn(&RpmWorld) -> Vec<(String, String)>,
    audit: &'static [&'static str],
    enforced: &'static [&'static str],
}

pub(crate) fn no_env(_: &RpmWorld) -> Vec<(String, String)> {
    Vec::new()
}

pub(crate) fn expect_refused(
    w: &RpmWorld,
    env: &[(String, String)],
    needles: &[&str],
    label: &str,
) {
    let db = w.package_db();
    let r = run_with_env(w, &["run"], env);
    eprintln!("{label}:\n{}", r.stderr());
    assert_eq!(r.code(), 3, "{label}: exit\n{}", r.stderr());
    for n in needles {
        assert!(
            r.stderr().contains(n),
            "{label}: the logs do not name {n:?}\n{}",
            r.stderr()
        );
    }
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{label}");
    assert_eq!(w.package_db(), db, "{label}: the package database changed");
}

pub(crate) fn check_weakening(row: Weakening) {
    // (1) The weakening is real.
    let w = RpmWorld::new(row.pm, "15.4.2", "15.4.3");
    (row.setup)(&w);
    let out = plain_install(&w, &(row.env)(&w));
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "{:?}: the plain package manager did not fall for it:\n{out}",
        row.pm
    );
    drop(w);
    // (2) The updater refuses it.
    let w = RpmWorld::new(row.pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    (row.setup)(&w);
    expect_refused(&w, &(row.env)(&w), row.audit, "audited");
    drop(w);
    // (3) The enforcement alone refuses it.
    let w = RpmWorld::new(row.pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    (row.setup)(&w);
    let mut env = (row.env)(&w);
    env.push(("TELEPORT_UPGRADE_TEST_SKIP_AUDIT".into(), "1".into()));
    expect_refused(&w, &env, row.enforced, "audit skipped");
}

/// The fixture's settings with `set` applied (`None`: removed).
pub(crate) fn with_settings(
    set: &[(&'static str, Option<&'static str>)],
) -> Vec<(&'static str, &'static str)> {
    let mut s = world::rpm::settings();
    for (k, v) in set {
        match v {
            Some(v) => match s.iter_mut().find(|(sk, _)| sk == k) {
                Some(e) => e.1 = v,
                None => s.push((k, v)),
            },
            None => s.retain(|(sk, _)| sk != k),
        }
    }
    s
}

/// No signature setting in the repository: everything is inherited.
pub(crate) const INHERIT: &[(&str, Option<&str>)] = &[
    ("gpgcheck", None),
    ("repo_gpgcheck", None),
    ("pkg_gpgcheck", None),
];

mod enforced {
    use super::*;

    #[test]
    fn dnf_gpgcheck_false() {
        check_weakening(Weakening {
            pm: Pm::Dnf,
            setup: |w| {
                w.write_repo_file(
                    "unsignedrpm",
                    &with_settings(&[("gpgcheck", Some("False"))]),
                )
            },
            env: no_env,
            audit: &["teleport.repo:6", "gpgcheck=False"],
            enforced: &["teleport-ent-15.4.3", "is not signed"],
        })
    }

    #[test]
    fn dnf_repo_gpgcheck_off() {
        check_weakening(Weakening {
            pm: Pm::Dnf,
            setup: |w| {
                w.write_repo_file("nometa", &with_settings(&[("repo_gpgcheck", Some("off"))]))
            },
            env: no_env,
            audit: &["teleport.repo:7", "repo_gpgcheck=off"],
            enforced: &["repomd.xml.asc"],
        })
    }

    #[test]
    fn dnf_gpgcheck_no_inherited_from_dnf_conf() {
        check_weakening(Weakening {
            pm: Pm::Dnf,
            setup: |w| {
                w.write_repo_file("unsignedrpm", &with_settings(&[("gpgcheck", None)]));
                w.root.write("/etc/dnf/dnf.conf", "[main]\ngpgcheck=no\n");
            },
            env: no_env,
            audit: &["/etc/dnf/dnf.conf:2", "gpgcheck=no"],
            enforced: &["teleport-ent-15.4.3", "is not signed"],
        })
    }

    #[test]
    fn zypper_pkg_gpgcheck_off_in_the_repo() {
        check_weakening(Weakening {
            pm: Pm::Zypper,
            setup: |w| {
                w.write_repo_file(
                    "unsignedrpm",
                    &with_settings(&[("pkg_gpgcheck", Some("off"))]),
                )
            },
            env: no_env,
            audit: &["teleport.repo:8", "pkg_gpgcheck=off"],
            enforced: &["Package is not signed"],
        })
    }

    #[test]
    fn zypper_gpgcheck_off_in_the_repo() {
        check_weakening(Weakening {
            pm: Pm::Zypper,
            setup: |w| {
                let mut s = with_settings(INHERIT);
                s.push(("gpgcheck", "off"));
                w.write_repo_file("nometa", &s);
            },
            env: no_env,
            audit: &["teleport.repo:7", "gpgcheck=off"],
            enforced: &["unsigned"],
        })
    }

    #[test]
    fn zypper_gpgcheck_off_in_zypp_conf() {
        check_weakening(Weakening {
            pm: Pm::Zypper,
            setup: |w| {
                w.write_repo_file("nometa", &with_settings(INHERIT));
                w.root
                    .write("/etc/zypp/zypp.conf", "[main]\ngpgcheck = off\n");
            },
            env: no_env,
            audit: &["/etc/zypp/zypp.conf:2", "gpgcheck = off"],
            enforced: &["unsigned"],
        })
    }

    /// The caller's `ZYPP_CONF` switches checks off; the root's own
    /// zypp.conf (what the audit reads) is clean. zypper never sees the
    /// caller's file: the updater hands it its own.
    #[test]
    fn zypper_callers_zypp_conf() {
        fn evil(w: &RpmWorld) -> Vec<(String, String)> {
            let p = w.dir.path().join("caller-zypp.conf");
            std::fs::write(&p, "[main]\ngpgcheck = off\n").unwrap();
            vec![("ZYPP_CONF".into(), p.display().to_string())]
        }
        check_weakening(Weakening {
            pm: Pm::Zypper,
            setup: |w| w.write_repo_file("nometa", &with_settings(INHERIT)),
            env: evil,
            audit: &["unsigned"],
            enforced: &["unsigned"],
        })
    }
}

/// An operator's mirror file, sorting first, defines the same repo id
/// `[teleport]` as the Teleport file, with packages signed by another key
/// (and that key listed). The audit and the pinned key look at the Teleport
/// file; dnf would install from the mirror. Refused before any package
/// operation, naming both files, also with the audit switched off.
#[test]
pub(crate) fn dnf_repo_id_defined_twice() {
    fn setup(w: &RpmWorld) {
        let f = world::rpm::fixture();
        w.root.write(
            "/etc/pki/rpm-gpg/RPM-GPG-KEY-mirror",
            std::fs::read(&f.foreign_key).unwrap(),
        );
        // dnf reads gpgkey paths on the host: name them so.
        let keys = format!(
            "file://{} file://{}",
            w.root.file(world::rpm::KEY_IN_ROOT).display(),
            w.root.file("/etc/pki/rpm-gpg/RPM-GPG-KEY-mirror").display()
        );
        w.root.write(
            "/etc/yum.repos.d/aaa-mirror.repo",
            testkit::rpm::RpmRepo::repo_file(
                "teleport",
                &w.repo_url("foreignrpm"),
                &[("gpgcheck", "1"), ("repo_gpgcheck", "1"), ("gpgkey", &keys)],
            ),
        );
        w.config("trusted-keys", &world::rpm::fixture().release_fingerprint);
    }
    // (1) Plain dnf takes the mirror's definition: a foreign-signed agent.
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    setup(&w);
    let out = plain_install_with(&w, &[], false);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{out}");
    let sig = w
        .root
        .rpm(&["-q", "--qf", "%{RSAHEADER:pgpsig}\n", "teleport-ent"]);
    let sig = String::from_utf8_lossy(&sig.stdout).to_string();
    let foreign = world::rpm::fixture()
        .foreign_fingerprint
        .to_ascii_lowercase();
    assert!(
        foreign.ends_with(&sig.trim().rsplit(' ').next().unwrap().to_ascii_lowercase()),
        "the plain dnf installed the mirror's (foreign-signed) package: {sig}"
    );
    drop(w);
    for skip in [false, true] {
        let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
        w.schedule_in_window();
        setup(&w);
        let mut env = Vec::new();
        if skip {
            env.push((
                "TELEPORT_UPGRADE_TEST_SKIP_AUDIT".to_string(),
                "1".to_string(),
            ));
        }
        expect_refused(
            &w,
            &env,
            &[
                "[teleport] is defined more than once",
                "/etc/yum.repos.d/aaa-mirror.repo:1",
                "/etc/yum.repos.d/teleport.repo:1",
            ],
            if skip { "audit skipped" } else { "audited" },
        );
    }
}

/// zypper: the same alias in two files of repos.d is refused too.
#[test]
pub(crate) fn zypper_alias_defined_twice() {
    let w = RpmWorld::new(Pm::Zypper, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.root.write(
        "/etc/zypp/repos.d/aaa-mirror.repo",
        testkit::rpm::RpmRepo::repo_file(
            "teleport",
            &w.repo_url("foreignrpm"),
            &world::rpm::settings(),
        ),
    );
    expect_refused(
        &w,
        &[],
        &[
            "[teleport] is defined more than once",
            "aaa-mirror.repo:1",
            "teleport.repo:1",
        ],
        "zypper duplicate",
    );
}

/// The caller's `HOME` holds a `~/.rpmmacros` that moves `%_dbpath`: the
/// plain tool then writes a second rpm database (and the system's never
/// sees the update). The updater's rpm, dnf and zypper read root's home:
/// the system database is updated and no other one is written.
pub(crate) fn callers_rpmmacros(pm: Pm) {
    fn home(w: &RpmWorld) -> Vec<(String, String)> {
        let h = w.dir.path().join("caller-home");
        std::fs::create_dir_all(&h).unwrap();
        std::fs::write(h.join(".rpmmacros"), "%_dbpath /var/lib/caller-rpmdb\n").unwrap();
        vec![("HOME".into(), h.display().to_string())]
    }
    let other_db = |w: &RpmWorld| w.root.file("/var/lib/caller-rpmdb");
    // (1) The plain tool with the caller's HOME uses another database.
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    if pm == Pm::Zypper {
        w.write_repo_file("good", &world::rpm::settings());
    }
    let out = plain_install(&w, &home(&w));
    assert!(other_db(&w).is_dir(), "{pm:?}: no second database:\n{out}");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{pm:?}: {out}");
    drop(w);
    // (2) The updater updates the system's database, and only it.
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let r = run_with_env(&w, &["run"], &home(&w));
    eprintln!("{}", r.stderr());
    r.expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{pm:?}");
    assert!(
        !other_db(&w).exists(),
        "{pm:?}: a second database was written"
    );
}

#[test]
pub(crate) fn dnf_callers_rpmmacros() {
    callers_rpmmacros(Pm::Dnf)
}

#[test]
pub(crate) fn zypper_callers_rpmmacros() {
    callers_rpmmacros(Pm::Zypper)
}

// ---- repository files the updater edits keep mode, owner and links ----

/// Make the Teleport repository file a relative symlink to a 0600 file
/// owned by 4242:4243 (credentials in the baseurl are common); returns the
/// target's host path.
pub(crate) fn link_and_protect(def: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = def
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("teleport-repos");
    std::fs::create_dir_all(&dir).unwrap();
    let target = dir.join(def.file_name().unwrap());
    std::fs::rename(def, &target).unwrap();
    let rel = PathBuf::from("../teleport-repos").join(def.file_name().unwrap());
    std::os::unix::fs::symlink(&rel, def).unwrap();
    std::os::unix::fs::chown(&target, Some(4242), Some(4243)).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    target
}

pub(crate) fn assert_kept(def: &Path, target: &Path, label: &str) {
    use std::os::unix::fs::MetadataExt;
    let l = std::fs::symlink_metadata(def).unwrap();
    assert!(l.file_type().is_symlink(), "{label}: the link was replaced");
    assert_eq!(
        std::fs::canonicalize(def).unwrap(),
        std::fs::canonicalize(target).unwrap(),
        "{label}: the link points elsewhere"
    );
    let m = std::fs::metadata(target).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600, "{label}: mode");
    assert_eq!((m.uid(), m.gid()), (4242, 4243), "{label}: owner");
}

/// dnf's `exclude=` hold (the v1 way, used in an alternate root).
#[test]
pub(crate) fn dnf_exclude_hold_keeps_mode_owner_and_link() {
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let def = w.root.file(Pm::Dnf.repo_file());
    let target = link_and_protect(&def);
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("exclude=teleport-ent"), "{text}");
    assert_kept(&def, &target, "exclude hold");
}

/// A channel move (stable/v15 -> stable/v16) rewrites the link's target in
/// place, mode and owner kept; so does its backup.
pub(crate) fn channel_move_keeps_mode_owner_and_link(kind: Kind) {
    let w = World::new(kind, "15.4.3", "16.0.0");
    w.point_at_channel_site(world::channel_site());
    w.schedule_in_window();
    let def = w.repo_definition_path();
    let target = link_and_protect(&def);
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("16.0.0"), "{kind:?}");
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("stable/v16"), "{kind:?}: {text}");
    assert_kept(&def, &target, &format!("{kind:?} channel move"));
}

mod channel_move_keeps_mode_owner_and_link {
    use super::*;
    #[test]
    fn dnf() {
        channel_move_keeps_mode_owner_and_link(Kind::Dnf)
    }
    #[test]
    fn zypper() {
        channel_move_keeps_mode_owner_and_link(Kind::Zypper)
    }
}

// ---- mirrorlist= repositories: refresh and install work; a channel move
// is left to the operator ----

pub(crate) fn mirrorlist_repository(pm: Pm) {
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.repo_server.set_route(
        "/mirrors/teleport.txt",
        testkit::http::Route::ok(format!("{}\n", w.repo_url("good"))),
    );
    let mut text = String::from("[teleport]\nname=Teleport (mirrors)\nenabled=1\n");
    text.push_str(&format!(
        "mirrorlist={}/mirrors/teleport.txt\n",
        w.repo_server.url()
    ));
    for (k, v) in world::rpm::settings() {
        text.push_str(&format!("{k}={v}\n"));
    }
    w.root.write(pm.repo_file(), &text);
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{pm:?}");
    // A new major: no URL to move; the log says the operator moves it.
    w.set_target("16.0.0");
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.logs_contain("cannot move its channel");
}

#[test]
pub(crate) fn dnf_mirrorlist_repository() {
    mirrorlist_repository(Pm::Dnf)
}

#[test]
pub(crate) fn zypper_mirrorlist_repository() {
    mirrorlist_repository(Pm::Zypper)
}
