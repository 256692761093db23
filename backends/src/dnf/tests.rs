use super::*;

/// The Teleport repository as the tests' plans name it.
fn teleport_repo() -> Source {
    Source {
        file: PathBuf::from("/etc/yum.repos.d/teleport.repo"),
        description: "repo teleport".into(),
        id: "teleport".into(),
        keyrings: vec![],
        uris: vec![],
    }
}

#[test]
fn every_package_call_forces_verification_and_the_repository() {
    let d = Dnf::new(System::host(), Options::default())
        .unwrap()
        .with_hold_method(HoldMethod::Exclude);
    let src = teleport_repo();
    let p = PkgName::parse("teleport-ent").unwrap();
    let v = PkgVersion::parse("15.4.3").unwrap();
    let mut cmds = d.plan(&src, &p, &v);
    cmds.extend(d.plan_reinstall(&src, &p, &v));
    let cmds: Vec<CommandLine> = cmds.into_iter().filter(|c| c.program != "#").collect();
    assert_eq!(cmds.len(), 4);
    for cl in cmds {
        for a in enforcement_args("teleport").into_iter().chain([
            "--disablerepo=*".to_string(),
            "--enablerepo=teleport".into(),
        ]) {
            assert!(cl.args.contains(&a), "{cl} lacks {a}");
        }
        assert!(
            cl.env.iter().any(|(k, v)| k == "HOME" && v == "/root"),
            "{cl}"
        );
    }
}

#[test]
fn the_plugins_own_entries_parse() {
    // As dnf-plugins-core 4.3.1 writes them (pkgtup2spec: arch ignored).
    let e = LockEntry::parse("teleport-ent-0:15.4.3-1.*").unwrap();
    assert_eq!(
        e,
        LockEntry {
            raw: "teleport-ent-0:15.4.3-1.*".into(),
            exclude: false,
            name: "teleport-ent".into(),
            epoch: Some("0".into()),
            version: "15.4.3".into(),
            release: "1".into(),
            arch: Some("*".into()),
        }
    );
    let x = LockEntry::parse("!teleport-ent-0:16.0.1-1.*").unwrap();
    assert!(x.exclude);
    assert_eq!(x.name, "teleport-ent");
    assert_eq!(x.raw, "!teleport-ent-0:16.0.1-1.*");
    let fips = LockEntry::parse("teleport-ent-fips-2:15.4.3-1.el8.x86_64").unwrap();
    assert_eq!(
        (
            fips.name.as_str(),
            fips.epoch.as_deref(),
            fips.release.as_str(),
            fips.arch.as_deref()
        ),
        ("teleport-ent-fips", Some("2"), "1.el8", Some("x86_64"))
    );
    // NEVR without arch: the release keeps its dots.
    let nevr = LockEntry::parse("teleport-ent-15.4.3-1.el8").unwrap();
    assert_eq!(
        (nevr.epoch, nevr.release.as_str(), nevr.arch),
        (None, "1.el8", None)
    );
}

#[test]
fn what_is_not_an_exact_entry_is_refused() {
    for l in [
        "",
        "teleport-ent",
        "teleport-ent-15.4.3",
        "teleport-ent-0:15.4.*-1.*",
        "teleport-ent-x:15.4.3-1.*",
        "teleport-ent-0:15.4.3-.*",
        "-0:15.4.3-1.*",
        "teleport-ent-0:15.4.3-1 extra",
        "Last metadata expiration check: 0:00:01 ago",
    ] {
        assert_eq!(LockEntry::parse(l), None, "{l:?}");
    }
}

#[test]
fn a_lock_holds_exactly_its_version() {
    let evr = Evr::parse("15.4.3-1").unwrap();
    assert_eq!(evr.epoch, "0");
    let p = PkgName::parse("teleport-ent").unwrap();
    assert_eq!(evr.spec(&p), "teleport-ent-0:15.4.3-1");
    let l = |s: &str| LockEntry::parse(s).unwrap();
    assert!(l("teleport-ent-0:15.4.3-1.*").locks(&evr));
    assert!(l("teleport-ent-15.4.3-1.x86_64").locks(&evr));
    assert!(!l("teleport-ent-0:15.4.2-1.*").locks(&evr));
    assert!(!l("teleport-ent-0:15.4.3-10.*").locks(&evr));
    assert!(!l("teleport-ent-1:15.4.3-1.*").locks(&evr));
    assert!(!l("!teleport-ent-0:15.4.3-1.*").locks(&evr));
    let e1 = Evr::parse("1:16.0.0-2").unwrap();
    assert_eq!(
        (e1.epoch.as_str(), e1.version.as_str(), e1.release.as_str()),
        ("1", "16.0.0", "2")
    );
    assert!(l("teleport-ent-1:16.0.0-2.*").locks(&e1));
    assert_eq!(Evr::parse("15.4.3"), None);
    assert_eq!(Evr::parse("x:15.4.3-1"), None);
}

#[test]
fn the_dry_run_shows_the_versionlock_hold() {
    let d = Dnf::new(System::host(), Options::default())
        .unwrap()
        .with_hold_method(HoldMethod::Versionlock);
    let src = teleport_repo();
    let p = PkgName::parse("teleport-ent").unwrap();
    let v = PkgVersion::parse("15.4.3").unwrap();
    let cmds: Vec<String> = d.plan(&src, &p, &v).iter().map(|c| c.to_string()).collect();
    assert!(
        cmds[1].contains("--disableplugin=versionlock") && cmds[1].contains("install"),
        "{cmds:?}"
    );
    assert!(
        cmds[2].contains("versionlock add")
            && cmds[2].contains("teleport-ent-<epoch>:15.4.3-<release>"),
        "{cmds:?}"
    );
    assert!(cmds[3].contains("exclude=teleport-ent"), "{cmds:?}");
}
