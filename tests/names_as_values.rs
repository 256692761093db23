//! Names read from files are values, never options or patterns, and the
//! repository is judged as the package manager loads it.
//!
//! Each case first shows with the plain tool that the condition is real
//! (dnf really enables the other repository through a glob id, really
//! reads `[tele$x]` as a second `[teleport]`; zypper really reads the
//! alias `-B` as an option), then that the updater refuses (exit 3) before
//! any package operation, naming the file, with the agent and the package
//! database unchanged.

use testkit::world::rpm::{settings, Pm, RpmWorld};
use testkit::world::{self, Run};

/// The updater's run in `w`; `skip_audit`: the dnf/zypper configuration
/// audit switched off (debug builds), so that the refusal is shown not to
/// depend on it.
fn run(w: &RpmWorld, skip_audit: bool) -> Run {
    let mut c = world::command(w.root.path(), &["run"]);
    c.env_remove("TELEPORT_UPGRADE_TEST_SKIP_AUDIT");
    if skip_audit {
        c.env("TELEPORT_UPGRADE_TEST_SKIP_AUDIT", "1");
    }
    Run(c.output().unwrap())
}

fn expect_refused(w: &RpmWorld, skip_audit: bool, needles: &[&str]) {
    let db = w.package_db();
    let r = run(w, skip_audit);
    eprintln!("skip_audit={skip_audit}:\n{}", r.stderr());
    assert_eq!(r.code(), 3, "exit\n{}", r.stderr());
    for n in needles {
        assert!(
            r.stderr().contains(n),
            "the logs do not name {n:?}\n{}",
            r.stderr()
        );
    }
    // Refused before any repository is contacted or package touched.
    let logs = r.stderr();
    let ran = logs.lines().find(|l| {
        l.contains("running")
            && (l.contains("makecache") || l.contains(" refresh") || l.contains(" install "))
    });
    assert_eq!(ran, None, "a package operation ran before the refusal");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.package_db(), db, "the package database changed");
}

/// One `[section]` as text.
fn section(id: &str, lines: &[(&str, &str)]) -> String {
    let mut s = format!("[{id}]\nname={id}\n");
    for (k, v) in lines {
        s.push_str(&format!("{k}={v}\n"));
    }
    s
}

/// The Teleport file defines `[teleport*]` (the good repository) and a
/// disabled `[teleport-old]` whose packages are signed by another key
/// (listed in its gpgkey).
fn glob_world() -> RpmWorld {
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let keys = w.foreign_and_release_keys("/etc/pki/rpm-gpg/RPM-GPG-KEY-old");
    let mut good = vec![("baseurl", w.repo_url("good")), ("enabled", "1".into())];
    good.extend(settings().into_iter().map(|(k, v)| (k, v.to_string())));
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let old_url = w.repo_url("foreignrpm");
    let text = format!(
        "{}\n{}",
        section("teleport*", &good),
        section(
            "teleport-old",
            &[
                ("baseurl", &old_url),
                ("enabled", "0"),
                ("gpgcheck", "1"),
                ("repo_gpgcheck", "1"),
                ("gpgkey", &keys),
            ],
        )
    );
    w.root.write("/etc/yum.repos.d/teleport.repo", text);
    w
}

/// dnf: `[teleport*]` is not a repo id dnf uses ("Bad id for repo"), and
/// on the command line `--enablerepo=teleport*` is a pattern that enables
/// the disabled `[teleport-old]`: plain dnf so installs the foreign-signed
/// agent. The updater refuses the name.
#[test]
fn dnf_glob_repo_id_is_refused() {
    let w = glob_world();
    let (code, out) = w.plain(&[
        "--disablerepo=*",
        "--enablerepo=teleport*",
        "install",
        "teleport-ent-15.4.3",
    ]);
    assert!(out.contains("Bad id for repo: teleport*"), "{out}");
    assert_eq!(code, 0, "{out}");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{out}");
    assert!(
        w.installed_is_foreign_signed(),
        "the glob enabled [teleport-old]: {out}"
    );
    drop(w);
    for skip in [false, true] {
        let w = glob_world();
        expect_refused(
            &w,
            skip,
            &[
                "[teleport*]",
                "/etc/yum.repos.d/teleport.repo:1",
                "contains `*`",
            ],
        );
    }
}

/// A second file whose section is `[tele$x]`, with `/etc/dnf/vars/x` =
/// `port`, pointing at packages signed by another key (that key listed).
fn variable_world(vars_dir: &str) -> RpmWorld {
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let keys = w.foreign_and_release_keys("/etc/pki/rpm-gpg/RPM-GPG-KEY-mirror");
    let url = w.repo_url("foreignrpm");
    w.root.write(
        "/etc/yum.repos.d/aaa-mirror.repo",
        section(
            "tele$x",
            &[
                ("baseurl", &url),
                ("gpgcheck", "1"),
                ("repo_gpgcheck", "1"),
                ("gpgkey", &keys),
            ],
        ),
    );
    w.root.write(&format!("{vars_dir}/x"), "port\n");
    w.config("trusted-keys", &world::rpm::fixture().release_fingerprint);
    w
}

/// dnf substitutes its variables in repo ids: `[tele$x]` is a second
/// `[teleport]` (dnf says "listed more than once" and takes the first
/// file's), so plain dnf installs the foreign-signed agent. The updater,
/// which saw one `[teleport]`, refuses naming both files and the variable.
#[test]
fn dnf_repo_id_made_by_a_variable_is_a_duplicate() {
    for vars_dir in ["/etc/dnf/vars", "/etc/yum/vars"] {
        let w = variable_world(vars_dir);
        let (code, out) = w.plain(&["install", "teleport-ent-15.4.3"]);
        assert!(
            out.contains("Repository teleport is listed more than once"),
            "{vars_dir}: {out}"
        );
        assert_eq!(code, 0, "{out}");
        assert!(w.installed_is_foreign_signed(), "{vars_dir}: {out}");
        drop(w);
        for skip in [false, true] {
            let w = variable_world(vars_dir);
            expect_refused(
                &w,
                skip,
                &[
                    "[teleport] is defined more than once",
                    "/etc/yum.repos.d/teleport.repo:1",
                    "[tele$x] (/etc/yum.repos.d/aaa-mirror.repo:1)",
                    &format!("{vars_dir}/x"),
                ],
            );
        }
    }
}

/// Without the variable file, `[tele$x]` is a bad id dnf skips: not a
/// duplicate, and the update goes ahead (the check is not a blanket
/// refusal of variables).
#[test]
fn dnf_unsubstituted_variable_is_not_a_duplicate() {
    let w = variable_world("/etc/dnf/vars");
    std::fs::remove_file(w.root.file("/etc/dnf/vars/x")).unwrap();
    w.root.write("/etc/dnf/vars/x", "other\n");
    let (_, out) = w.plain(&["-C", "repolist", "--all"]);
    assert!(
        out.contains("Bad id for repo: tele$x") || out.contains("teleother"),
        "{out}"
    );
    let r = run(&w, false);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(!w.installed_is_foreign_signed());
}

/// The Teleport file's alias is `alias`.
fn dash_world(alias: &str) -> RpmWorld {
    let w = RpmWorld::new(Pm::Zypper, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let mut text = testkit::rpm::RpmRepo::repo_file(alias, &w.repo_url("good"), &settings());
    text = text.replace("name=Teleport test repository", "name=Teleport dash");
    w.root.write("/etc/zypp/repos.d/teleport.repo", text);
    w
}

/// zypper: `zypper refresh --force -B` reads the alias as its
/// `--build-only` option (no metadata is fetched for it), where
/// `--repo=-B` refreshes that repository. The updater refuses the alias.
#[test]
fn zypper_alias_that_is_an_option_is_refused() {
    let w = dash_world("-B");
    let (_, out) = w.plain(&["refresh", "--force", "-B"]);
    assert!(
        out.contains("Forcing building of repository cache") && !out.contains("Retrieving"),
        "-B was read as an alias: {out}"
    );
    let (code, out) = w.plain(&["refresh", "--force", "--repo=-B"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Retrieving repository 'Teleport dash' metadata"),
        "--repo=-B did not refresh it: {out}"
    );
    drop(w);
    let w = dash_world("-B");
    expect_refused(
        &w,
        false,
        &[
            "[-B]",
            "/etc/zypp/repos.d/teleport.repo:1",
            "starts with `-`",
        ],
    );
}

/// zypper: the alias `--repo` after `--repo` is an option without its
/// value ("The flag --repo requires a argument.", exit 2): every update
/// would fail. The updater refuses the alias, naming the file.
#[test]
fn zypper_alias_that_is_an_option_name_is_refused() {
    let w = dash_world("--repo");
    let (code, out) = w.plain(&["refresh", "--force", "--repo"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("requires a argument"), "{out}");
    drop(w);
    let w = dash_world("--repo");
    expect_refused(
        &w,
        false,
        &[
            "[--repo]",
            "/etc/zypp/repos.d/teleport.repo:1",
            "starts with `-`",
        ],
    );
}
