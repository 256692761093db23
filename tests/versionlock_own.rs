//! dnf's versionlock plugin (the real one, dnf-plugins-core 4.3.1) and an
//! operator's lines in its lock list: the updater moves only the lines it
//! wrote, judges "held" as the plugin does, refuses a target an operator's
//! line forbids (naming the file and line), and a kill between adding the
//! new lock and deleting the old one converges at the next run.
//!
//! The plugin is loaded from the .deb the container rows use (cached by
//! them, else `apt-get download`), unpacked beside the root: the root's
//! `dnf.conf` names its directories (`pluginpath`, `pluginconfpath`) and a
//! lock list inside the root, so nothing of the host's dnf changes. A
//! two-line shim plugin, loaded first, puts the plugin's helper module
//! (`dnfpluginscore`) on Python's path; the plugin itself is as shipped.
//! Each case first shows with plain dnf what the plugin does.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use testkit::world::rpm::{Pm, RpmWorld, KEY_IN_ROOT};

const LIST: &str = "/etc/dnf/plugins/versionlock.list";

/// dnf-plugins-core unpacked once (the .deb from the container rows'
/// cache, else downloaded with the host's apt).
fn plugin_tree() -> &'static Path {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let cache = std::env::var_os("CONTAINER_TESTS_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/cache/teleport-ent-updater-tests"))
            .join("debs/dnf-versionlock");
        let find = |d: &Path| {
            std::fs::read_dir(d).ok().and_then(|rd| {
                rd.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("dnf-plugins-core_"))
                })
            })
        };
        let dl = tempfile::tempdir().unwrap().keep();
        let deb = find(&cache).unwrap_or_else(|| {
            let st = std::process::Command::new("apt-get")
                .args([
                    "-q",
                    "-o",
                    "APT::Sandbox::User=root",
                    "download",
                    "dnf-plugins-core",
                ])
                .current_dir(&dl)
                .status()
                .unwrap();
            assert!(st.success(), "apt-get download dnf-plugins-core");
            find(&dl).expect("the downloaded .deb")
        });
        let out = dl.join("tree");
        let st = std::process::Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "dpkg-deb -x {}", deb.display());
        out
    })
}

/// A dnf world whose root's dnf loads the real versionlock plugin, with
/// `list` as the lock list.
fn world(installed: &str, target: &str, list: &str) -> RpmWorld {
    let w = RpmWorld::new(Pm::Dnf, installed, target);
    w.schedule_in_window();
    let py = plugin_tree().join("usr/lib/python3/dist-packages");
    let (shim, plugins, conf) = (
        w.root.file("/opt/dnf-shim"),
        w.root.file("/opt/dnf-plugins"),
        w.root.file("/etc/dnf/plugins"),
    );
    for d in [&shim, &plugins, &conf] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::copy(
        py.join("dnf-plugins/versionlock.py"),
        plugins.join("versionlock.py"),
    )
    .unwrap();
    std::fs::write(
        shim.join("shim.py"),
        format!(
            "import sys\nsys.path.insert(0, {:?})\n",
            py.display().to_string()
        ),
    )
    .unwrap();
    w.root.write(
        "/etc/dnf/plugins/versionlock.conf",
        format!(
            "[main]\nenabled = 1\nlocklist = {}\n",
            w.root.file(LIST).display()
        ),
    );
    w.root.write(LIST, list);
    w.root.write(
        "/etc/dnf/dnf.conf",
        format!(
            "[main]\ngpgcheck=1\ninstallonly_limit=3\npluginpath={},{}\npluginconfpath={}\n",
            shim.display(),
            plugins.display(),
            conf.display()
        ),
    );
    w
}

fn list(w: &RpmWorld) -> String {
    w.root.read(LIST)
}

/// plain dnf, with the repository's key named as a host path (dnf reads
/// gpgkey paths on the host even with --installroot).
fn plain(w: &RpmWorld, args: &[&str]) -> (i32, String) {
    let key = format!(
        "--setopt=teleport.gpgkey=file://{}",
        w.root.file(KEY_IN_ROOT).display()
    );
    let mut a = vec![key.as_str()];
    a.extend(args);
    w.plain(&a)
}

/// The plugin's `delete` globs and ignores `!`: deleting the updater's
/// lock of 15.4.2 deletes the operator's `!` line of 15.4.2 too, and every
/// comment. The updater's update away from 15.4.2 deletes its own line
/// only (the line and the operator's comments stay).
#[test]
fn an_update_moves_only_the_updaters_own_line() {
    let before = "# operator: never back to 15.4.2\n!teleport-ent-0:15.4.2-1.*\n\n# Added lock on x\nteleport-ent-0:15.4.2-1.*\n";
    let w = world("15.4.2", "15.4.3", before);
    let (code, out) = w.plain(&[
        "--disablerepo=*",
        "versionlock",
        "delete",
        "teleport-ent-0:15.4.2-1.*",
    ]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(list(&w), "", "the plugin's delete: {out}");

    let w = world("15.4.2", "15.4.3", before);
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    let after = list(&w);
    assert!(
        after.starts_with(
            "# operator: never back to 15.4.2\n!teleport-ent-0:15.4.2-1.*\n\n# Added lock on x\n"
        ),
        "{after}"
    );
    assert!(!after.contains("\nteleport-ent-0:15.4.2-1.*"), "{after}");
    assert!(after.contains("\nteleport-ent-0:15.4.3-1.*\n"), "{after}");
    let st = testkit::world::status_json(w.root.path());
    assert_eq!(st["held"], true, "{st}");
    // Held as dnf judges it: plain dnf will not move it.
    let (_, out) = plain(&w, &["install", "teleport-ent-15.4.4"]);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{out}");
}

/// An operator's `teleport-ent-*` admits every version: with it plain dnf
/// moves the agent whatever else the list locks. The updater leaves the
/// line, and holds the agent another way (`exclude=`), so that plain dnf
/// no longer moves it.
#[test]
fn an_operators_wildcard_lock_is_not_a_hold() {
    let w = world(
        "15.4.2",
        "15.4.3",
        "teleport-ent-*\nteleport-ent-0:15.4.2-1.*\n",
    );
    let (code, out) = plain(&w, &["install", "teleport-ent-15.4.3"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "plain dnf: {out}");

    let w = world("15.4.2", "15.4.3", "teleport-ent-*\n");
    let st = testkit::world::status_json(w.root.path());
    assert_eq!(st["held"], false, "{st}");
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(list(&w).starts_with("teleport-ent-*\n"), "{}", list(&w));
    let (_, out) = plain(&w, &["install", "teleport-ent-15.4.4"]);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{out}");
    let st = testkit::world::status_json(w.root.path());
    assert_eq!(st["held"], true, "{st}");
}

/// An operator's `!teleport-ent-15.4.3*`: plain dnf will not install
/// 15.4.3; the updater refuses it (exit 3) naming the file and line, and
/// changes nothing.
#[test]
fn an_operators_bang_line_forbids_the_target() {
    let body = "# no 15.4.3\n!teleport-ent-15.4.3*\n";
    let w = world("15.4.2", "15.4.3", body);
    let (code, out) = plain(&w, &["install", "teleport-ent-15.4.3"]);
    assert_ne!(code, 0, "{out}");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{out}");

    let w = world("15.4.2", "15.4.3", body);
    let db = w.package_db();
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    let at = format!("{}:2", w.root.file(LIST).display());
    for n in [
        "!teleport-ent-15.4.3*",
        at.as_str(),
        "excluded by the operator",
    ] {
        assert!(r.stderr().contains(n), "no {n:?}\n{}", r.stderr());
    }
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(w.package_db(), db);
    assert_eq!(list(&w), body);
}

/// Two locks of the agent (the new one added, the old one not deleted
/// yet: what a kill between the two edits leaves): plain dnf goes back to
/// the old version. The next run finds the agent not held and finishes
/// the swap; the killed run itself is killed at the fail point between
/// the two steps.
#[test]
fn a_kill_between_the_lock_edits_converges() {
    let w = world(
        "15.4.3",
        "15.4.3",
        "teleport-ent-0:15.4.2-1.*\nteleport-ent-0:15.4.3-1.*\n",
    );
    let (code, out) = plain(&w, &["downgrade", "teleport-ent"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "plain dnf: {out}");

    let w = world("15.4.2", "15.4.3", "teleport-ent-0:15.4.2-1.*\n");
    let out = testkit::world::command(w.root.path(), &["run"])
        .env("TELEPORT_UPGRADE_FAILPOINT", "before-drop-old-holds")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "killed: {out:?}");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert_eq!(
        list(&w)
            .lines()
            .filter(|l| l.starts_with("teleport-ent-"))
            .count(),
        2,
        "{}",
        list(&w)
    );
    let st = testkit::world::status_json(w.root.path());
    assert_eq!(st["held"], false, "{st}");
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let l = list(&w);
    assert!(!l.contains("teleport-ent-0:15.4.2-1.*"), "{l}");
    assert!(l.contains("teleport-ent-0:15.4.3-1.*"), "{l}");
    let st = testkit::world::status_json(w.root.path());
    assert_eq!(st["held"], true, "{st}");
    // The line is recorded as the updater's own: the next move (to
    // 16.0.0) moves it again.
    assert_eq!(
        w.root
            .read("/var/lib/teleport-upgrade/versionlock-own.list"),
        "teleport-ent-0:15.4.3-1.*\n"
    );
    w.set_target("16.0.0");
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(w.installed().as_deref(), Some("16.0.0"));
    let entries: Vec<String> = list(&w)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    assert_eq!(entries, ["teleport-ent-0:16.0.0-1.*"], "{}", list(&w));
}

/// The same state reached without the fail point (two own locks, the
/// agent at the new version): a no-op run converges it.
#[test]
fn a_noop_run_finishes_an_unfinished_swap() {
    let w = world(
        "15.4.3",
        "15.4.3",
        "teleport-ent-0:15.4.2-1.*\nteleport-ent-0:15.4.3-1.*\n",
    );
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(list(&w), "teleport-ent-0:15.4.3-1.*\n");
    let (_, out) = plain(&w, &["downgrade", "teleport-ent"]);
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{out}");
}

/// The probe for the plugin (a Python dnf start on every run) is asked
/// once, and its answer kept while dnf's configuration, the program and
/// the rpm database are unchanged; a change asks again.
#[test]
fn the_versionlock_probe_is_asked_again_only_when_something_changed() {
    let w = world("15.4.3", "15.4.3", "");
    let probe = "versionlock list";
    let r = w.run(&["run", "-v"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stderr().contains(probe), "probed: {}", r.stderr());
    let st = testkit::world::status_json(w.root.path());
    assert_eq!(st["held"], true, "{st}");
    let r = w.run(&["run", "-v"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        !r.stderr().contains(probe),
        "not probed again: {}",
        r.stderr()
    );
    // dnf's configuration changed: asked again
    let conf = w.root.file("/etc/dnf/dnf.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("# changed\n");
    std::fs::write(&conf, text).unwrap();
    let r = w.run(&["run", "-v"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.stderr().contains(probe), "probed again: {}", r.stderr());
    let st = testkit::world::status_json(w.root.path());
    assert_eq!(st["held"], true, "{st}");
}

/// A probe that fails for another reason than a missing plugin (here dnf
/// cannot use its cache directory, as on a full disk) keeps the method the
/// last run found: the agent stays held by versionlock, no `exclude=` is
/// added. The plain probe really fails there.
#[test]
fn a_probe_that_fails_otherwise_keeps_the_versionlock_hold() {
    let w = world("15.4.3", "15.4.3", "");
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let cache = w.root.file("/var/cache/dnf");
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::write(&cache, "not a directory").unwrap();
    let (code, out) = plain(&w, &["-C", "--disablerepo=*", "versionlock", "list"]);
    assert_ne!(code, 0, "the plain probe fails: {out}");
    assert!(!out.contains("No such command"), "{out}");
    // something the probe depends on changed: it is asked again, and fails
    let conf = w.root.file("/etc/dnf/dnf.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("# changed\n");
    std::fs::write(&conf, text).unwrap();
    let r = w.run(&["run"]);
    assert!(
        r.stderr().contains("the hold's method stays versionlock"),
        "{}",
        r.stderr()
    );
    let repos = w.root.file("/etc/yum.repos.d");
    for e in std::fs::read_dir(repos).unwrap() {
        let t = std::fs::read_to_string(e.unwrap().path()).unwrap();
        assert!(!t.contains("exclude="), "no exclude= added: {t}");
    }
}

/// A broken update rolled back (from the kept package file, offline)
/// leaves exactly one lock: the installed version's, not the failed
/// version's beside it (the container matrix's rpm-dnf row found it).
#[test]
fn a_rollback_from_the_kept_package_leaves_one_lock() {
    let w = world("15.4.3", testkit::world::BROKEN, "");
    let marker = w.root.file(testkit::world::BROKEN_MARKER);
    w.vs.set_route(
        "/readyz",
        testkit::http::Route::gate(
            &marker,
            testkit::http::Route::status(503, "not ready"),
            testkit::http::Route::ok("ok"),
        ),
    );
    w.config("diag-addr", &format!("127.0.0.1:{}", w.vs.port()));
    w.config("health-timeout", "3");
    let r = w.run(&["run"]);
    assert_eq!(r.code(), 6, "{}", r.stderr());
    assert!(
        r.stderr().contains("from the kept package file"),
        "{}",
        r.stderr()
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    let locks: Vec<String> = list(&w)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    assert_eq!(
        locks,
        vec!["teleport-ent-0:15.4.3-1.*".to_string()],
        "{}",
        list(&w)
    );
}
