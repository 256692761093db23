//! Which repository serves the agent follows from configuration only,
//! never from what the package manager's cache holds.
//!
//! A second enabled repository (`[mirror]`, not named after Teleport) that
//! offers the agent: once `dnf makecache` / `zypper refresh` has cached
//! it, the plain tool says both offer the agent; the updater's choice is
//! still `[teleport]` and the update goes through, as it does before the
//! cache knows the mirror (it used to exit 4, "several repositories").
//! Two enabled repositories named after Teleport with no `source-file`
//! are a configuration error naming both, the same before and after the
//! cache is filled.

use testkit::rpm::RpmRepo;
use testkit::world::rpm::{settings, Pm, RpmWorld, KEY_IN_ROOT};

fn dir(pm: Pm) -> &'static str {
    match pm {
        Pm::Dnf => "/etc/yum.repos.d",
        Pm::Zypper => "/etc/zypp/repos.d",
    }
}

/// A second enabled repository `id` in `<id>.repo`, serving the agent.
fn second(w: &RpmWorld, id: &str) {
    w.root.write(
        &format!("{}/{id}.repo", dir(w.pm)),
        RpmRepo::repo_file(id, &w.repo_url("good"), &settings()),
    );
}

/// Fill the cache of every repository with the plain tool, and show that
/// it now says `id` offers the agent.
fn cache_all(w: &RpmWorld, id: &str) {
    let (out, listed) = match w.pm {
        Pm::Dnf => {
            let keys: Vec<String> = ["teleport", id]
                .iter()
                .map(|r| {
                    format!(
                        "--setopt={r}.gpgkey=file://{}",
                        w.root.file(KEY_IN_ROOT).display()
                    )
                })
                .collect();
            let mut a: Vec<&str> = keys.iter().map(String::as_str).collect();
            a.push("makecache");
            let (code, out) = w.plain(&a);
            assert_eq!(code, 0, "{out}");
            a.pop();
            a.extend(["-C", "repoquery", "--qf", "%{repoid}", "teleport-ent"]);
            let (code, listed) = w.plain(&a);
            // One repo id a line: the mirror's among them.
            let offers = listed.lines().any(|l| l.trim() == id);
            (if offers { code } else { -1 }, listed)
        }
        Pm::Zypper => {
            let (code, out) = w.plain(&["--gpg-auto-import-keys", "refresh"]);
            assert_eq!(code, 0, "{out}");
            // Exit 104 when the repository offers nothing of that name.
            let (code, listed) = w.plain(&[
                "--no-refresh",
                "search",
                "-s",
                "--match-exact",
                "--repo",
                id,
                "teleport-ent",
            ]);
            (
                if listed.contains("teleport-ent") {
                    code
                } else {
                    -1
                },
                listed,
            )
        }
    };
    assert_eq!(out, 0, "the cache does not offer it from {id}: {listed}");
}

fn a_second_offering_repository_does_not_change_the_choice(pm: Pm) {
    // Before the cache knows the mirror.
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    second(&w, "mirror");
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    // After: the same answer.
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    second(&w, "mirror");
    cache_all(&w, "mirror");
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

#[test]
fn dnf_a_cached_second_repository_does_not_change_the_choice() {
    a_second_offering_repository_does_not_change_the_choice(Pm::Dnf);
}

#[test]
fn zypper_a_cached_second_repository_does_not_change_the_choice() {
    a_second_offering_repository_does_not_change_the_choice(Pm::Zypper);
}

fn two_named_repositories_are_a_configuration_error(pm: Pm) {
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    second(&w, "teleport-mirror");
    let before = w.run(&["run"]);
    cache_all(&w, "teleport-mirror");
    let after = w.run(&["run"]);
    for r in [&before, &after] {
        assert_ne!(r.code(), 0, "{}", r.stderr());
        for n in ["[teleport]", "[teleport-mirror]", "source-file"] {
            assert!(r.stderr().contains(n), "no {n:?}\n{}", r.stderr());
        }
    }
    assert_eq!(before.code(), after.code());
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

#[test]
fn dnf_two_named_repositories_are_a_configuration_error() {
    two_named_repositories_are_a_configuration_error(Pm::Dnf);
}

#[test]
fn zypper_two_named_repositories_are_a_configuration_error() {
    two_named_repositories_are_a_configuration_error(Pm::Zypper);
}
