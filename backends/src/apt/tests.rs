use super::discovery::entry_matches_origin;
use super::exec::without_urls;
use super::*;

#[test]
fn private_files_are_private_and_carry_only_safe_source_options() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/apt/sources.list.d")).unwrap();
    let list = root.path().join("etc/apt/sources.list.d/teleport.list");
    std::fs::write(
        &list,
        "deb [signed-by=/k.asc arch=amd64 trusted=yes allow-insecure=on allow-weak=1 allow-downgrade-to-insecure=yes check-valid-until=no lang=en] https://u:tok@mirror.example/debian bookworm stable/v15\n",
    )
    .unwrap();
    let apt = Apt::new(System::rooted(root.path()).unwrap(), Options::default()).unwrap();
    let (entries, _) = sources::parse_file(&list).unwrap();
    let src = apt.source_from_entries(entries).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let work = apt.work().unwrap();
    assert_eq!(mode(&work.work), 0o700);
    for f in [
        Path::new(&src.id),
        work.clear_file.as_path(),
        work.apt_config.as_deref().unwrap(),
    ] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    let text = std::fs::read_to_string(&src.id).unwrap();
    for bad in ["trusted", "allow-", "check-valid-until"] {
        assert!(!text.contains(bad), "{bad} carried: {text}");
    }
    assert!(
        text.contains("arch=amd64") && text.contains("lang=en") && text.contains("signed-by="),
        "{text}"
    );
    assert!(!src.description.contains("tok"), "{}", src.description);
}

#[test]
fn a_successful_command_that_let_something_unverified_through_fails() {
    let fin = |out: &str| Finished {
        code: Some(0),
        stdout: out.into(),
        stderr: String::new(),
        elapsed: std::time::Duration::ZERO,
    };
    let cl = CommandLine::new("apt-get").arg("install");
    for bad in [
        "WARNING: The following packages cannot be authenticated!\n  teleport-ent\nAuthentication warning overridden.\n",
        "W: The repository 'http://u:tok@h bookworm Release' is not signed.\n",
        "W: Use --allow-insecure-repositories to force the update\n",
    ] {
        let e = check_verified_output(&cl, &fin(bad)).unwrap_err();
        assert!(e.is_untrusted(), "{bad}");
        assert!(!e.to_string().contains("tok"), "{e}");
    }
    let ok = "Reading package lists...\nThe following packages will be upgraded:\n  teleport-ent\nGet:1 http://127.0.0.1:1 bookworm/stable/v15 amd64 teleport-ent amd64 15.4.3 [1 kB]\nSetting up teleport-ent (15.4.3) ...\n";
    check_verified_output(&cl, &fin(ok)).unwrap();
}

#[test]
fn policy_origins() {
    let out = "teleport-ent:\n  Installed: 15.4.2\n  Candidate: 15.4.3\n  Version table:\n     15.4.3 500\n        500 http://127.0.0.1:8000/debian bookworm/stable/v15 amd64 Packages\n *** 15.4.2 100\n        100 /var/lib/dpkg/status\n";
    assert_eq!(
        parse_policy_origins(out),
        vec![(
            "http://127.0.0.1:8000/debian".to_string(),
            "bookworm/stable/v15".to_string()
        )]
    );
}

#[test]
fn origins_match_entries_with_slashed_components() {
    let (e, _) = sources::parse_list(
        Path::new("/x.list"),
        "deb [signed-by=/k] http://127.0.0.1:8000/debian/ bookworm stable/v15\n",
    );
    assert!(entry_matches_origin(
        &e[0],
        "http://127.0.0.1:8000/debian",
        "bookworm/stable/v15"
    ));
    assert!(!entry_matches_origin(
        &e[0],
        "http://127.0.0.1:8000/debian",
        "bookworm/stable/v16"
    ));
    assert!(!entry_matches_origin(
        &e[0],
        "http://127.0.0.1:9/debian",
        "bookworm/stable/v15"
    ));
}

#[cfg(test)]
mod apt_version_tests {
    use super::*;

    #[test]
    fn versions_from_apt_get_version() {
        assert_eq!(
            parse_apt_version("apt 2.0.9 (amd64)\nSupported modules:"),
            Some((2, 0, 9))
        );
        assert_eq!(parse_apt_version("apt 2.6.1 (amd64)"), Some((2, 6, 1)));
        assert_eq!(parse_apt_version("apt 3.0.3 (arm64)"), Some((3, 0, 3)));
        assert_eq!(
            parse_apt_version("apt 2.2.4ubuntu1 (amd64)"),
            Some((2, 2, 4))
        );
        assert_eq!(parse_apt_version("apt 1.8 (amd64)"), Some((1, 8, 0)));
        assert_eq!(parse_apt_version("garbage"), None);
        assert!((2, 0, 9) < ERROR_ON_SINCE && (2, 2, 4) >= ERROR_ON_SINCE);
    }

    #[test]
    fn warnings_count_without_error_on() {
        let ok = "Hit:1 http://127.0.0.1:1/ bookworm InRelease\nReading package lists...\n";
        assert_eq!(refresh_problem_without_error_on(ok), None);
        let bad = "Get:1 http://x bookworm InRelease [1 kB]\nErr:1 http://x bookworm InRelease\n  The following signatures couldn't be verified because the public key is not available: NO_PUBKEY 0123\nW: GPG error: http://x bookworm InRelease: ...\n";
        assert!(refresh_problem_without_error_on(bad)
            .unwrap()
            .starts_with("Err:"));
    }
}

#[test]
fn urls_are_left_out_of_the_words_judged() {
    assert_eq!(
        without_urls("Get:1 http://h/insecure/ bookworm InRelease [1 kB]"),
        "Get:1  bookworm InRelease [1 kB]"
    );
    assert_eq!(
        without_urls("W: The repository 'http://h/x bookworm Release' is not signed."),
        "W: The repository ' bookworm Release' is not signed."
    );
    assert!(without_urls("N: insecure repositories are disabled").contains("insecure"));
}

#[test]
fn dpkg_audit_names() {
    let out = "The following packages are only half configured, probably due to problems\nconfiguring them the first time.  The configuration should be retried using\ndpkg --configure <package> or the configure menu option in dselect:\n other-tool           a tool\n libfoo1:amd64        a library\n\n";
    assert_eq!(
        super::dpkg::parse_audit_names(out),
        vec!["other-tool".to_string(), "libfoo1:amd64".to_string()]
    );
    assert!(super::dpkg::parse_audit_names("").is_empty());
}
