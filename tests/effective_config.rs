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
