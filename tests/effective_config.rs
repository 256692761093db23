//! The trust audit judges dnf's signature checks as dnf itself resolves
//! them (dnf's own library loads the repository: variables substituted,
//! `[main]` applied), not as the files read to a parser that does not
//! substitute: a check turned on through a variable is on, one turned off
//! through a variable is off, and where dnf's view and the files disagree
//! the run is refused, saying so. Each case first shows with the plain
//! tool what dnf resolves: plain `dnf install` from a repository of
//! unsigned packages succeeds only when `gpgcheck` resolves to 0.

use testkit::world::rpm::{fixture, settings, Pm, RpmWorld};

/// A dnf world whose `[teleport]` serves `repo` and sets `gpgcheck` and
/// `repo_gpgcheck` to the given values (the rest as usual), with
/// `/etc/dnf/vars/<k>` = `v`. `host_key`: gpgkey names the release key by
/// its host path (plain dnf reads gpgkey files from the host even with
/// `--installroot`).
fn world(
    repo: &str,
    gpgcheck: &str,
    repo_gpgcheck: &str,
    vars: &[(&str, &str)],
    host_key: bool,
) -> RpmWorld {
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let key = format!("file://{}", fixture().release_key.display());
    let s: Vec<(&str, &str)> = settings()
        .into_iter()
        .map(|(k, v)| match k {
            "gpgcheck" => (k, gpgcheck),
            "repo_gpgcheck" => (k, repo_gpgcheck),
            "gpgkey" if host_key => (k, key.as_str()),
            _ => (k, v),
        })
        .collect();
    w.write_repo_file(repo, &s);
    for (k, v) in vars {
        w.root
            .write(&format!("/etc/dnf/vars/{k}"), format!("{v}\n"));
    }
    w
}

/// Whether plain dnf installs the unsigned 15.4.3 with `[teleport]`'s
/// `gpgcheck` = `gpgcheck` (and `vars`): whether dnf resolves it to 0.
fn plain_dnf_skips_package_signatures(gpgcheck: &str, vars: &[(&str, &str)]) -> bool {
    let w = world("unsignedrpm", gpgcheck, "1", vars, true);
    let (code, out) = w.plain(&["install", "teleport-ent-15.4.3"]);
    eprintln!("plain dnf, gpgcheck={gpgcheck}:\n{out}");
    if code != 0 {
        assert!(out.contains("is not signed"), "{out}");
    }
    code == 0 && w.installed().as_deref() == Some("15.4.3")
}

/// `gpgcheck=$on`, `repo_gpgcheck=$on` with `on` = 1: dnf checks both;
/// the update goes ahead. (Before: refused, "does not set repo_gpgcheck".)
#[test]
fn dnf_checks_turned_on_by_a_variable_are_on() {
    assert!(!plain_dnf_skips_package_signatures("$on", &[("on", "1")]));
    let w = world("good", "$on", "$on", &[("on", "1")], false);
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(0)
        .logs_contain("repo_gpgcheck is on for [teleport] as dnf resolves it");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// `gpgcheck=$off` with `off` = 0, under a `[main]` that says
/// `gpgcheck=1`: the files alone read "on" (the repository's value is no
/// boolean, `[main]`'s is), dnf resolves 0. Refused (exit 3) before any
/// package operation, naming the disagreement. (Before: accepted.)
#[test]
fn dnf_check_turned_off_by_a_variable_is_refused() {
    assert!(plain_dnf_skips_package_signatures("$off", &[("off", "0")]));
    let w = world("good", "$off", "1", &[("off", "0")], false);
    let db = w.package_db();
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(3)
        .logs_contain("gpgcheck=")
        .logs_contain("dnf resolves it to 0, though the files read on");
    assert!(
        !r.stderr()
            .lines()
            .any(|l| l.contains("running") && (l.contains("makecache") || l.contains(" install "))),
        "a package operation ran"
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.package_db(), db);
}

/// A dnf world whose `[teleport]` serves `repo` with the usual settings
/// but `gpgkey` = `gpgkey`, and `/etc/dnf/vars/<k>` = `v`.
fn world_with_gpgkey(repo: &str, gpgkey: &str, vars: &[(&str, &str)]) -> RpmWorld {
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let s: Vec<(&str, &str)> = settings()
        .into_iter()
        .map(|(k, v)| if k == "gpgkey" { (k, gpgkey) } else { (k, v) })
        .collect();
    w.write_repo_file(repo, &s);
    for (k, v) in vars {
        w.root
            .write(&format!("/etc/dnf/vars/{k}"), format!("{v}\n"));
    }
    w
}

/// Whether a package operation (makecache, install) ran in `r`.
fn package_operation_ran(stderr: &str) -> bool {
    stderr
        .lines()
        .any(|l| l.contains("running") && (l.contains("makecache") || l.contains(" install ")))
}

/// `gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-$k` with `k` = `teleport`:
/// dnf reads the release key (plain dnf, which reads gpgkey files from
/// the host, installs the signed 15.4.3 through the variable); the
/// updater checks and pins that file and updates. (Before: refused, "the
/// key file /etc/pki/rpm-gpg/RPM-GPG-KEY-$k does not exist".)
#[test]
fn dnf_gpgkey_named_through_a_variable_is_the_key_checked_and_pinned() {
    let plain = world_with_gpgkey("good", "", &[("k", "teleport")]);
    let host_key = format!(
        "file://{}",
        plain.root.file("/etc/pki/rpm-gpg/RPM-GPG-KEY-$k").display()
    );
    let s: Vec<(&str, &str)> = settings()
        .into_iter()
        .map(|(k, v)| {
            if k == "gpgkey" {
                (k, host_key.as_str())
            } else {
                (k, v)
            }
        })
        .collect();
    plain.write_repo_file("good", &s);
    let (code, out) = plain.plain(&["install", "teleport-ent-15.4.3"]);
    assert_eq!(code, 0, "plain dnf expands the variable in gpgkey: {out}");
    assert_eq!(plain.installed().as_deref(), Some("15.4.3"));
    drop(plain);

    let w = world_with_gpgkey(
        "good",
        "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-$k",
        &[("k", "teleport")],
    );
    w.config("trusted-keys", &fixture().release_fingerprint);
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(0).logs_contain(
        "gpgkey of [teleport] as dnf expands it: file:///etc/pki/rpm-gpg/RPM-GPG-KEY-teleport",
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// The file's text names a key file that holds the release key (a file
/// literally called `RPM-GPG-KEY-$k`), while dnf expands `$k` to
/// `foreign`, a file holding another key. Plain dnf, as an operator runs
/// it, installs the foreign-signed agent through it. With the release key
/// pinned, the updater pins the key dnf will use: refused (exit 3) before
/// any package operation, naming the expanded file. (Before: the pin
/// judged the literal file and passed; makecache and the install ran and
/// the run exited 0, from a repository of foreign-signed packages.)
#[test]
fn dnf_gpgkey_expanded_to_another_key_is_refused_by_the_pin() {
    fn setup(host_paths: bool) -> RpmWorld {
        let w = world_with_gpgkey("foreignrpm", "", &[("k", "foreign")]);
        let release = std::fs::read(&fixture().release_key).unwrap();
        w.root.write("/etc/pki/rpm-gpg/RPM-GPG-KEY-$k", &release);
        w.root.write(
            "/etc/pki/rpm-gpg/RPM-GPG-KEY-foreign",
            std::fs::read(&fixture().foreign_key).unwrap(),
        );
        let at = |p: &str| {
            if host_paths {
                format!("file://{}", w.root.file(p).display())
            } else {
                format!("file://{p}")
            }
        };
        let keys = format!(
            "{} {}",
            at("/etc/pki/rpm-gpg/RPM-GPG-KEY-teleport"),
            at("/etc/pki/rpm-gpg/RPM-GPG-KEY-$k")
        );
        let s: Vec<(&str, &str)> = settings()
            .into_iter()
            .map(|(k, v)| {
                if k == "gpgkey" {
                    (k, keys.as_str())
                } else {
                    (k, v)
                }
            })
            .collect();
        w.write_repo_file("foreignrpm", &s);
        w
    }
    let plain = setup(true);
    let (code, out) = plain.plain(&["install", "teleport-ent-15.4.3"]);
    assert_eq!(code, 0, "plain dnf imports the expanded key: {out}");
    assert!(plain.installed_is_foreign_signed(), "{out}");
    drop(plain);

    let w = setup(false);
    w.config("trusted-keys", &fixture().release_fingerprint);
    let db = w.package_db();
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(3).logs_contain("RPM-GPG-KEY-foreign");
    assert!(
        !package_operation_ran(&r.stderr()),
        "a package operation ran"
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.package_db(), db);
}

// ---- zypper: the repository's signature settings as zypper resolves them ----

/// A zypper world whose `/etc/zypp/zypp.conf` is `conf` and whose
/// `[teleport]` serves `repo` with `lines` (raw, in order) after its
/// header, name and baseurl, then `gpgkey` naming the release key.
fn zypper_world(repo: &str, conf: &str, lines: &str) -> RpmWorld {
    let w = RpmWorld::new(Pm::Zypper, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.root.write("/etc/zypp/zypp.conf", conf);
    w.root.write(
        Pm::Zypper.repo_file(),
        format!(
            "[teleport]\nname=Teleport\nbaseurl={}\n{lines}enabled=1\nautorefresh=0\ngpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-teleport\n",
            w.repo_url(repo)
        ),
    );
    w
}

/// What plain zypper, as an operator runs it, lists for `[teleport]`
/// (`zypper --xmlout lr`), and whether it installs 15.4.3 from
/// `nometa` (unsigned metadata, release-signed packages) under the same
/// zypp.conf and settings.
fn plain_zypper(conf: &str, lines: &str) -> (String, bool) {
    let w = zypper_world("nometa", conf, lines);
    let (code, listed) = w.plain(&["--xmlout", "lr"]);
    assert_eq!(code, 0, "{listed}");
    let listed = listed
        .lines()
        .find(|l| l.contains("alias=\"teleport\""))
        .unwrap_or_else(|| panic!("no [teleport] listed: {listed}"))
        .to_string();
    let (_, out) = w.plain(&["refresh"]);
    let (_, out2) = w.plain(&["install", "--oldpackage", "teleport-ent=15.4.3"]);
    eprintln!("plain zypper, {lines:?} / {conf:?}:\n{listed}\n{out}\n{out2}");
    (listed, w.installed().as_deref() == Some("15.4.3"))
}

/// The updater's run on `good` with `conf` and `lines`: refused (exit 3)
/// naming `needles`, before any package operation, database unchanged.
fn zypper_refused(conf: &str, lines: &str, needles: &[&str]) {
    let w = zypper_world("good", conf, lines);
    let db = w.package_db();
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(3);
    for n in needles {
        r.logs_contain(n);
    }
    assert!(
        !r.stderr()
            .lines()
            .any(|l| l.contains("running") && (l.contains(" refresh") || l.contains(" install "))),
        "a package operation ran"
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.package_db(), db);
}

/// `gpgcheck=1` with `repo_gpgcheck=0` and `pkg_gpgcheck=0`: zypper
/// 1.14.42 lists the repository with `repo_gpgcheck="1"
/// pkg_gpgcheck="1"`, yet installs from unsigned metadata: the listing
/// hides an explicit off. The updater judges the file's explicit offs
/// (refused, naming the line), not the listing's 1. (Before: refused
/// too; this pins the judgement against a move to the listing alone.)
#[test]
fn zypper_explicit_repo_gpgcheck_off_is_enforced_though_zypper_lists_it_on() {
    let lines = "gpgcheck=1\nrepo_gpgcheck=0\npkg_gpgcheck=0\n";
    let (listed, installed) = plain_zypper("[main]\n", lines);
    assert!(
        listed.contains("gpgcheck=\"1\" repo_gpgcheck=\"1\" pkg_gpgcheck=\"1\""),
        "{listed}"
    );
    assert!(installed, "plain zypper installs from unsigned metadata");
    zypper_refused("[main]\n", lines, &["teleport.repo:5: repo_gpgcheck=0"]);
}

/// zypp.conf turns `gpgcheck` off in a first `[main]` section; a second
/// `[main]` follows. libzypp merges them: zypper lists `gpgcheck="0"`
/// and installs from unsigned metadata. Refused, naming zypp.conf's
/// line. (Before: only the last `[main]` was read, the run went ahead.)
#[test]
fn zypper_gpgcheck_off_in_an_earlier_main_section_is_refused() {
    let conf = "[main]\ngpgcheck = off\n\n[main]\nlocks = /etc/zypp/locks\n";
    let (listed, installed) = plain_zypper(conf, "");
    assert!(listed.contains(" gpgcheck=\"0\""), "{listed}");
    assert!(installed, "plain zypper installs from unsigned metadata");
    zypper_refused(conf, "", &["zypp.conf:2: gpgcheck = off"]);
}

/// An indented `gpgcheck=0` under `baseurl=`: to libzypp a setting of
/// its own (zypper lists `gpgcheck="0"` and installs from unsigned
/// metadata), to a parser of continuation lines part of the URL.
/// Refused from zypper's view, naming the repository. (Before: the
/// files read no gpgcheck, the default on; the run went ahead.)
#[test]
fn zypper_gpgcheck_off_only_zypper_reads_is_refused() {
    let lines = " gpgcheck=0\n";
    let (listed, installed) = plain_zypper("[main]\n", lines);
    assert!(listed.contains(" gpgcheck=\"0\""), "{listed}");
    assert!(installed, "plain zypper installs from unsigned metadata");
    zypper_refused(
        "[main]\n",
        lines,
        &["teleport.repo:1", "zypper resolves gpgcheck to 0"],
    );
}

/// `[ teleport ]`: a parser that trims the header reads the alias
/// `teleport`; zypper lists the alias " teleport " (spaces kept), so
/// `zypper --repo teleport` would not name it. The two disagree:
/// refused, naming the header's line. (Before: the run went ahead with
/// its own copy named `[teleport]`.)
#[test]
fn zypper_alias_zypper_reads_otherwise_is_refused() {
    let w = zypper_world(
        "good",
        "[main]\n",
        "gpgcheck=1\nrepo_gpgcheck=1\npkg_gpgcheck=1\n",
    );
    let text = std::fs::read_to_string(w.root.file(Pm::Zypper.repo_file())).unwrap();
    let text = text.replacen("[teleport]", "[ teleport ]", 1);
    w.root.write(Pm::Zypper.repo_file(), &text);
    let (code, listed) = w.plain(&["--xmlout", "lr"]);
    assert_eq!(code, 0, "{listed}");
    assert!(listed.contains("alias=\" teleport \""), "{listed}");
    let db = w.package_db();
    let r = w.run(&["run"]);
    eprintln!("{}", r.stderr());
    r.expect(3)
        .logs_contain("teleport.repo:1")
        .logs_contain("zypper does not list this repository");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.package_db(), db);
}
