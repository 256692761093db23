use super::*;

/// The caller's hints as the updater gives them (tests only).
fn hints() -> crate::RepoHints {
    crate::RepoHints {
        release_hosts: vec!["releases.teleport.dev".into()],
        words: vec!["teleport".into()],
    }
}

const REPO: &str = "\
# Teleport
[teleport]
name=Teleport Enterprise
baseurl=https://yum.releases.teleport.dev/rhel/9/Teleport/x86_64/stable/v15
  https://mirror.example.com/teleport
enabled=1
gpgcheck = 1
repo_gpgcheck=1
gpgkey=https://yum.releases.teleport.dev/gpg

[other]
baseurl=http://example.com/os
gpgcheck=0
";

#[test]
fn parses_sections_lines_and_continuations() {
    let s = parse_ini(Path::new("/x.repo"), REPO);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].id, "teleport");
    assert_eq!(s[0].line, 2);
    assert_eq!(s[0].urls().len(), 2);
    assert_eq!(s[0].bool("gpgcheck"), Some((true, 7)));
    assert_eq!(s[0].name(), "Teleport Enterprise");
    assert!(on_release_hosts(&s[0], &hints()) && named_like(&s[0], &hints()));
    assert!(!on_release_hosts(&s[1], &hints()) && !named_like(&s[1], &hints()));
    // No hints, no product names: nothing looks like anything.
    assert!(!named_like(&s[0], &crate::RepoHints::default()));
    assert_eq!(s[1].bool("gpgcheck"), Some((false, 13)));
    assert_eq!(s[1].name(), "other");
}

#[test]
fn booleans_as_dnf_and_libzypp_read_them() {
    for t in ["1", "yes", "True", "ON", " on "] {
        assert_eq!(parse_bool(t), Some(true), "{t}");
        assert_eq!(parse_bool_zypp(t), Some(true), "{t}");
    }
    for f in ["0", "No", "FALSE", "off"] {
        assert_eq!(parse_bool(f), Some(false), "{f}");
        assert_eq!(parse_bool_zypp(f), Some(false), "{f}");
    }
    // dnf has no always/never; libzypp has.
    assert_eq!(parse_bool("never"), None);
    assert_eq!(parse_bool_zypp("Never"), Some(false));
    assert_eq!(parse_bool_zypp("always"), Some(true));
    assert_eq!(parse_bool("enabled"), None);
    assert_eq!(parse_bool("2"), None);
}

#[test]
fn duplicates_are_refused_naming_both_files() {
    let mut s = parse_ini(
        Path::new("/etc/yum.repos.d/aaa.repo"),
        "[teleport]\nbaseurl=x\n",
    );
    s.extend(parse_ini(
        Path::new("/etc/yum.repos.d/teleport.repo"),
        "# t\n[teleport]\nbaseurl=y\n[other]\n",
    ));
    let e = refuse_duplicates(&System::host(), &s, "teleport", "dnf")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/etc/yum.repos.d/aaa.repo:1 and /etc/yum.repos.d/teleport.repo:2"),
        "{e}"
    );
    assert!(refuse_duplicates(&System::host(), &s, "other", "dnf").is_ok());
    // The same id in one place is one candidate, not an ambiguity.
    assert_eq!(
        choose_section(&s, &hints()).unwrap().unwrap().id,
        "teleport"
    );
}

#[test]
fn hosts_and_file_urls() {
    assert_eq!(
        url_host("https://u:p@Yum.Releases.Teleport.dev:443/x"),
        "yum.releases.teleport.dev"
    );
    assert_eq!(url_host("http://[::1]:8080/r"), "::1");
    assert_eq!(file_url_path("file:///etc/pki/k"), Some("/etc/pki/k"));
    assert_eq!(file_url_path("file:/etc/pki/k"), Some("/etc/pki/k"));
    assert_eq!(file_url_path("https://x/k"), None);
}

#[test]
fn exclude_is_added_once_and_removed_cleanly() {
    let added = edit_exclude(REPO, "teleport", "teleport-ent", true).unwrap();
    assert!(
        added.contains(
            "gpgkey=https://yum.releases.teleport.dev/gpg\nexclude=teleport-ent\n\n[other]"
        ),
        "{added}"
    );
    assert_eq!(edit_exclude(&added, "teleport", "teleport-ent", true), None);
    let secs = parse_ini(Path::new(""), &added);
    assert!(excludes(&secs, "teleport", "teleport-ent"));
    assert!(!excludes(&secs, "other", "teleport-ent"));
    let removed = edit_exclude(&added, "teleport", "teleport-ent", false).unwrap();
    assert_eq!(removed, REPO);
    assert_eq!(edit_exclude(REPO, "teleport", "teleport-ent", false), None);
    assert_eq!(edit_exclude(REPO, "nosuch", "teleport-ent", true), None);
}

#[test]
fn exclude_lists_keep_other_packages() {
    let t = "[teleport]\nbaseurl=x\nexcludepkgs=foo, bar\n";
    let a = edit_exclude(t, "teleport", "teleport-ent", true).unwrap();
    assert_eq!(
        a,
        "[teleport]\nbaseurl=x\nexcludepkgs=foo, bar, teleport-ent\n"
    );
    let r = edit_exclude(&a, "teleport", "teleport-ent", false).unwrap();
    assert_eq!(r, "[teleport]\nbaseurl=x\nexcludepkgs=foo, bar\n");
    // A section at the end of a file without a final newline.
    let t = "[teleport]\nbaseurl=x";
    assert_eq!(
        edit_exclude(t, "teleport", "teleport-ent", true).unwrap(),
        "[teleport]\nbaseurl=x\nexclude=teleport-ent\n"
    );
}

#[test]
fn globs() {
    assert!(glob_match("teleport*", "teleport-ent"));
    assert!(glob_match("teleport-ent", "teleport-ent"));
    assert!(!glob_match("teleport", "teleport-ent"));
    assert!(glob_match("tele?ort-*", "teleport-ent"));
}

#[test]
fn choosing_reads_configuration_only() {
    let text = "[a]\nbaseurl=http://x/\n[teleport-old]\nenabled=0\nbaseurl=http://y/\n[b]\nbaseurl=https://rpm.releases.teleport.dev/x\n";
    let s = parse_ini(Path::new("/etc/yum.repos.d/vendor.repo"), text);
    // The release host wins.
    assert_eq!(choose_section(&s, &hints()).unwrap().unwrap().id, "b");
    // Without one: the one named after it (enabled or not, when alone).
    let s = parse_ini(
        Path::new("/etc/yum.repos.d/vendor.repo"),
        "[a]\nbaseurl=http://x/\n[teleport-old]\nenabled=0\nbaseurl=http://y/\n[c]\nbaseurl=http://z/\n",
    );
    assert_eq!(
        choose_section(&s, &hints()).unwrap().unwrap().id,
        "teleport-old"
    );
    // Two enabled ones named after it: an error naming both.
    let s = parse_ini(
        Path::new("/etc/yum.repos.d/vendor.repo"),
        "[teleport]\nbaseurl=http://x/\n[teleport-mirror]\nbaseurl=http://y/\n",
    );
    let several = choose_section(&s, &hints()).unwrap_err();
    assert_eq!(several.len(), 2);
    let none = parse_ini(
        Path::new("/etc/yum.repos.d/os.repo"),
        "[os]\nbaseurl=http://x/\n",
    );
    assert_eq!(choose_section(&none, &hints()).unwrap(), None);
}

#[test]
fn trust_failures_are_recognised() {
    let t = "Importing...\nError: Failed to download metadata for repo 'teleport': repomd.xml GPG signature verification error: Bad GPG signature\n";
    assert!(trust_failure_line(t).unwrap().contains("Bad GPG signature"));
    assert!(trust_failure_line("Error: Unable to find a match: teleport-ent-99").is_none());
    let z = "Do you want to reject the key, trust temporarily, or trust always? [r/t/a/?] (r): r\n - Signature verification failed for repomd.xml\n";
    assert_eq!(
        trust_failure_line(z).unwrap(),
        "- Signature verification failed for repomd.xml"
    );
    assert!(trust_failure_line("Do you want to reject the key? (r): r").is_some());
}
