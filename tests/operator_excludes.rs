//! An operator's dnf excludes are respected and understood.
//!
//! * `exclude=teleport-ent` in `dnf.conf [main]` keeps every version out:
//!   the agent is held (status says so) and an update moves it as it moves
//!   the updater's own hold, leaving the operator's line in place.
//! * A versioned exclude (`exclude=teleport-ent-15.4.3*`, in the
//!   repository's section or in `[main]`) forbids that version: the updater
//!   never installs it (its install lifts holds with `--disableexcludes`)
//!   and refuses, naming the line.
//!
//! Each case first shows with plain dnf that the exclude is real.

use testkit::world::rpm::{settings, Pm, RpmWorld};

const MAIN: &str = "[main]\ngpgcheck=1\ninstallonly_limit=3\n";

fn plain_install_is_excluded(w: &RpmWorld) {
    // dnf reads gpgkey paths on the host even with --installroot.
    let key = format!(
        "--setopt=teleport.gpgkey=file://{}",
        w.root.file(testkit::world::rpm::KEY_IN_ROOT).display()
    );
    let (code, out) = w.plain(&[&key, "install", "teleport-ent-15.4.3"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("filtered out by exclude filtering") || out.contains("No match for argument"),
        "{out}"
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{out}");
}

/// `exclude=teleport-ent` in `[main]`: held, and an update goes through,
/// the operator's line kept.
#[test]
fn dnf_main_exclude_is_a_hold() {
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let conf = format!("{MAIN}exclude=teleport-ent\n");
    w.root.write("/etc/dnf/dnf.conf", &conf);
    plain_install_is_excluded(&w);
    let st = testkit::world::status_json(w.root.path());
    assert_eq!(st["held"], true, "{st}");
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert_eq!(
        w.root.read("/etc/dnf/dnf.conf"),
        conf,
        "the operator's line moved"
    );
}

fn versioned_world(in_main: bool) -> RpmWorld {
    let w = RpmWorld::new(Pm::Dnf, "15.4.2", "15.4.3");
    w.schedule_in_window();
    if in_main {
        w.root.write(
            "/etc/dnf/dnf.conf",
            format!("{MAIN}exclude=teleport-ent-15.4.3*\n"),
        );
    } else {
        let mut s = settings();
        s.push(("exclude", "teleport-ent-15.4.3*"));
        w.write_repo_file("good", &s);
    }
    w
}

/// A versioned exclude forbids the target: refused (exit 3), naming the
/// line; nothing installed.
#[test]
fn dnf_versioned_exclude_is_never_installed() {
    for (in_main, place) in [
        (false, "[teleport] (/etc/yum.repos.d/teleport.repo:10)"),
        (true, "[main] (/etc/dnf/dnf.conf:4)"),
    ] {
        let w = versioned_world(in_main);
        plain_install_is_excluded(&w);
        let w = versioned_world(in_main);
        let db = w.package_db();
        let r = w.run(&["run"]);
        eprintln!("{place}:\n{}", r.stderr());
        assert_eq!(r.code(), 3, "{place}\n{}", r.stderr());
        for n in [
            "exclude=teleport-ent-15.4.3*",
            place,
            "excluded by the operator",
        ] {
            assert!(r.stderr().contains(n), "{place}: no {n:?}\n{}", r.stderr());
        }
        assert_eq!(w.installed().as_deref(), Some("15.4.2"));
        assert_eq!(w.package_db(), db);
    }
}

/// zypper: an operator's regex lock (`^teleport-e.t$`, as `zypper addlock`
/// cannot write but `/etc/zypp/locks` holds) keeps the agent: plain zypper
/// will not move it, and the updater reports it held (it judged the lock's
/// text as a glob, and said `held: NO`).
#[test]
fn zypper_regex_lock_is_held() {
    let w = RpmWorld::new(Pm::Zypper, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.root.write(
        "/etc/zypp/locks",
        "type: package\nmatch_type: regex\ncase_sensitive: on\nsolvable_name: ^teleport-e.t$\n",
    );
    let (_, out) = w.plain(&["refresh"]);
    let (_, install) = w.plain(&["install", "--oldpackage", "teleport-ent=15.4.3"]);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{out}\n{install}");
    assert!(install.contains("lock"), "{install}");
    let st = testkit::world::status_json(w.root.path());
    assert_eq!(st["held"], true, "{st}");
}
