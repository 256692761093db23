use super::exec::xml_attr;
use super::*;
use std::time::Duration;

fn fin(code: i32, stdout: &str) -> Finished {
    Finished {
        code: Some(code),
        stdout: stdout.to_string(),
        stderr: String::new(),
        elapsed: Duration::ZERO,
    }
}

#[test]
fn exit_codes_are_mapped() {
    let z = Zypper::new(
        System::rooted(Path::new("/tmp")).unwrap(),
        Options::default(),
    )
    .unwrap();
    let src = Source {
        file: PathBuf::from("/tmp/etc/zypp/repos.d/teleport.repo"),
        description: "repo teleport".into(),
        id: "teleport".into(),
        keyrings: vec![],
        uris: vec![],
    };
    let p = PkgName::parse("teleport-ent").unwrap();
    let cl = CommandLine::new("zypper");
    let ctx = Some((&p, "15.4.3", &src));
    let check = |code, out: &str| z.check(&cl, &fin(code, out), ctx);
    assert!(check(0, "").is_ok());
    assert!(check(102, "reboot").is_ok());
    assert!(check(103, "restart").is_ok());
    assert!(matches!(
        check(
            7,
            "System management is locked by the application with pid 1"
        ),
        Err(Error::Locked { .. })
    ));
    assert!(matches!(
        check(104, "No provider of 'teleport-ent=15.4.3' found."),
        Err(Error::VersionNotFound { .. })
    ));
    assert!(matches!(
        check(
            104,
            "Warning: ... Signature verification failed for repomd.xml\nNo provider"
        ),
        Err(Error::Untrusted { .. })
    ));
    assert!(matches!(
        check(
            8,
            "teleport-ent (Teleport): Signature verification failed [6-File is unsigned]"
        ),
        Err(Error::Untrusted { .. })
    ));
    assert!(matches!(
        check(8, "Installation has been aborted"),
        Err(Error::CommandFailed { .. })
    ));
    assert!(matches!(
        check(4, " - Signature verification failed for repomd.xml"),
        Err(Error::Untrusted { .. })
    ));
    assert!(matches!(
        check(106, "Skipping repository"),
        Err(Error::CommandFailed { .. })
    ));
    let post = check(107, "warning: %post(teleport-ent) scriptlet failed")
        .unwrap_err()
        .to_string();
    assert!(post.contains("%post"), "{post}");
}

#[test]
fn zypp_conf_copy_forces_the_signature_checks() {
    let t = "# x\n[main]\ngpgcheck = off\nsolver.onlyRequires = true\nPKG_GPGCHECK=0\n[other]\ngpgcheck=0\n";
    let out = force_main(t, FORCED);
    assert_eq!(
        out,
        "# x\n[main]\ngpgcheck = 1\nrepo_gpgcheck = 1\npkg_gpgcheck = 1\nsolver.onlyRequires = true\n[other]\ngpgcheck=0\n"
    );
    assert_eq!(
        force_main("", FORCED),
        "[main]\ngpgcheck = 1\nrepo_gpgcheck = 1\npkg_gpgcheck = 1\n"
    );
}

#[test]
fn the_repository_copy_forces_the_signature_checks() {
    let secs = rpmdb::parse_ini(
        Path::new("/r.repo"),
        "[teleport]\nbaseurl=https://u:p@m/x\ngpgcheck=off\npkg_gpgcheck=0\nautorefresh=0\n[b]\nx=1\n",
    );
    assert_eq!(
        repo_copy(&secs[0], FORCED),
        "[teleport]\nbaseurl=https://u:p@m/x\nautorefresh=0\ngpgcheck=1\nrepo_gpgcheck=1\npkg_gpgcheck=1\n"
    );
}

#[test]
fn every_call_gets_the_private_configuration_and_refresh_names_the_alias() {
    let z = Zypper::new(System::host(), Options::default()).unwrap();
    let src = Source {
        file: PathBuf::from("/etc/zypp/repos.d/teleport.repo"),
        description: "repo teleport".into(),
        id: "teleport".into(),
        keyrings: vec![],
        uris: vec![],
    };
    let p = PkgName::parse("teleport-ent").unwrap();
    let v = PkgVersion::parse("15.4.3").unwrap();
    let private = z.private.path().display().to_string();
    for cl in z.plan(&src, &p, &v) {
        let conf = cl
            .env
            .iter()
            .find(|(k, _)| k == "ZYPP_CONF")
            .map(|(_, v)| v.clone());
        assert_eq!(conf, Some(format!("{private}/zypp.conf")), "{cl}");
        assert!(
            cl.env.iter().any(|(k, v)| k == "HOME" && v == "/root"),
            "{cl}"
        );
        assert!(!cl.args.iter().any(|a| a == "-B"), "{cl}");
    }
    let refresh = z.refresh_cmd(&src);
    assert!(
        refresh.args.ends_with(&[
            "refresh".to_string(),
            "--force".into(),
            "--repo=teleport".into()
        ]),
        "{refresh}"
    );
    assert!(
        refresh.args.contains(&format!("{private}/repos.d")),
        "{refresh}"
    );
    let install = z.install_cmd(&src, &p, "15.4.3");
    assert!(
        install.args.iter().any(|a| a == "--repo=teleport"),
        "{install}"
    );
}

#[test]
fn xml_attributes() {
    let l = r#"<solvable status="other-version" name="teleport-ent" kind="package" edition="16.0.0-1" arch="noarch" repository="Teleport &amp; Co"/>"#;
    assert_eq!(xml_attr(l, "name").as_deref(), Some("teleport-ent"));
    assert_eq!(xml_attr(l, "repository").as_deref(), Some("Teleport & Co"));
    assert_eq!(xml_attr(l, "missing"), None);
}

#[test]
fn locks_hold_as_zypper_matches_them() {
    let regex = r#"<locks size="2"><lock number="1"><name>^teleport-e.t$</name><type>package</type><matches size="1"><match kind="package" name="teleport-ent" edition="15.4.2-1" arch="x86_64" installed="true" repo="@System"></match>
</matches></lock>
<lock number="2"><name>other*</name><type>package</type><matches size="0"/></lock>
</locks>"#;
    assert!(locks_hold(regex, "teleport-ent"));
    assert!(!locks_hold(regex, "teleport-ent-fips"));
    let candidate_only = r#"<lock number="1"><name>teleport-ent</name><type>package</type><matches size="1"><match kind="package" name="teleport-ent" edition="16.0.0-1" installed="false" repo="teleport"></match></matches></lock>"#;
    assert!(!locks_hold(candidate_only, "teleport-ent"));
    // An older zypper without matches: the lock's name as a glob.
    let plain = r#"<lock number="1"><name>teleport*</name><type>package</type></lock>"#;
    assert!(locks_hold(plain, "teleport-ent"));
}

#[test]
fn listing_parsed_strictly() {
    let xml = "<?xml version='1.0'?>\n<stream>\n<repo-list>\n<repo alias=\"other\" name=\"O\" gpgcheck=\"0\" repo_gpgcheck=\"0\" pkg_gpgcheck=\"0\">\n</repo>\n<repo alias=\"teleport\" name=\"T\" priority=\"99\" enabled=\"1\" autorefresh=\"0\" gpgcheck=\"1\" repo_gpgcheck=\"0\" pkg_gpgcheck=\"1\">\n<url>http://x/</url>\n</repo>\n</repo-list>\n</stream>\n";
    let l = crate::zypper::parse_listing(xml, "teleport")
        .unwrap()
        .unwrap();
    assert!(l["gpgcheck"] && !l["repo_gpgcheck"] && l["pkg_gpgcheck"]);
    assert_eq!(crate::zypper::parse_listing(xml, "absent").unwrap(), None);
    assert_eq!(
        crate::zypper::parse_listing("<stream>\n<repo-list>\n</repo-list>\n</stream>", "t")
            .unwrap(),
        None
    );
    for bad in [
        "",
        "<stream>\n<repo-list>\n<repo alias=\"t\" gpgcheck=\"1\" repo_gpgcheck=\"1\">\n</repo-list>",
        "<stream>\n<repo-list>\n<repo alias=\"t\" gpgcheck=\"yes\" repo_gpgcheck=\"1\" pkg_gpgcheck=\"1\">\n</repo-list>",
        "<stream>\n<repo-list>\n<repo alias=\"t\" gpgcheck=\"1\" repo_gpgcheck=\"1\" pkg_gpgcheck=\"1\">\n<repo alias=\"t\" gpgcheck=\"1\" repo_gpgcheck=\"1\" pkg_gpgcheck=\"1\">\n</repo-list>",
    ] {
        assert!(crate::zypper::parse_listing(bad, "t").is_err(), "{bad:?}");
    }
}
