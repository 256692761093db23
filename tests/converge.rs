//! Every run converges the host, not only runs that update: an agent at
//! the target that is not held, half-configured, twice in the rpm
//! database, or whose lock/exclude was removed is repaired by a plain
//! `run` OUTSIDE the window; afterwards the distribution's routine upgrade
//! (`apt-get upgrade`, `dnf upgrade`, `zypper update`) does not move it.
//! Each row first shows that the routine upgrade does move an unheld agent
//! (the weakness is real), on a twin world.
//!
//! Also: a package manager that is busy (its lock held by a transaction
//! still running) is waited for and never repaired meanwhile (exit 5);
//! apt's lists and archives locks, which `DPkg::Lock::Timeout` does not
//! cover, are waited for the same way.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::each_backend;
use testkit::world::multi::{Kind, World};
use testkit::world::rpm::{self as rpmworld, Pm};
use testkit::world::{apt as common, PKG};

fn root(w: &World) -> PathBuf {
    match w {
        World::Apt(a) => a.root.path().to_path_buf(),
        World::Rpm(r) => r.root.path().to_path_buf(),
    }
}

/// The distribution's routine upgrade of everything, in the root, with
/// the real tool. Returns its combined output.
fn routine_upgrade(w: &World) -> String {
    let out = match w {
        World::Apt(a) => {
            let line = a.host_sources_line();
            let o = a.root.apt_get_with_sources(&line, &["update"]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            a.root.apt_get_with_sources(&line, &["-y", "upgrade"])
        }
        World::Rpm(r) if r.pm == Pm::Dnf => {
            // dnf reads `gpgkey=file://` on the host even with
            // --installroot: a copy of the root's definition (as it is
            // now, exclude= included) naming the key by its host path.
            let rt = r.root.path();
            let repos = r.dir.path().join("host-repos");
            std::fs::create_dir_all(&repos).unwrap();
            let text = std::fs::read_to_string(r.root.file(r.pm.repo_file()))
                .unwrap()
                .replace("file:///etc/", &format!("file://{}/etc/", rt.display()));
            std::fs::write(repos.join("teleport.repo"), text).unwrap();
            Command::new("dnf")
                .env("LC_ALL", "C")
                .arg(format!("--installroot={}", rt.display()))
                .arg(format!(
                    "--config={}",
                    rt.join("etc/dnf/dnf.conf").display()
                ))
                .arg("--releasever=9")
                .arg(format!("--setopt=reposdir={}", repos.display()))
                .args(["-y", "upgrade"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        }
        World::Rpm(r) => {
            let rt = r.root.path();
            Command::new("zypper")
                .env("LC_ALL", "C")
                .env("ZYPP_CONF", rt.join("etc/zypp/zypp.conf"))
                .args(["--non-interactive", "--root"])
                .arg(rt)
                .arg("update")
                .stdin(Stdio::null())
                .output()
                .unwrap()
        }
    };
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn held(w: &World) -> bool {
    match w {
        World::Apt(a) => a.held(),
        World::Rpm(r) if r.pm == Pm::Dnf => std::fs::read_to_string(r.root.file(r.pm.repo_file()))
            .unwrap()
            .lines()
            .any(|l| l.trim_start().starts_with("exclude") && l.contains(PKG)),
        World::Rpm(r) => std::fs::read_to_string(r.root.file("/etc/zypp/locks"))
            .unwrap_or_default()
            .contains(PKG),
    }
}

fn rpm_instances(w: &World) -> usize {
    match w {
        World::Apt(_) => 1,
        World::Rpm(r) => String::from_utf8_lossy(&r.root.rpm(&["-q", PKG]).stdout)
            .lines()
            .count(),
    }
}

/// The agent at the target, outside the window.
fn at_target(kind: Kind) -> World {
    let w = World::new(kind, "15.4.3", "15.4.3");
    w.schedule_outside_window();
    w
}

/// The control: an unheld agent IS moved by the routine upgrade.
fn control_unheld_moves(kind: Kind) {
    let w = at_target(kind);
    assert!(!held(&w), "{kind:?}: the world starts unheld");
    let out = routine_upgrade(&w);
    assert_ne!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "{kind:?}: the routine upgrade moves an unheld agent\n{out}"
    );
}

/// Run outside the window, then check: held, one instance, still at
/// 15.4.3 after the routine upgrade.
#[track_caller]
fn converge_and_check(w: &World, row: &str) {
    let k = w.kind();
    let r = w.run(&["run"]);
    r.expect(0).logs_contain("repair");
    assert!(held(w), "{k:?} {row}: held\n{}", r.stderr());
    assert_eq!(
        rpm_instances(w),
        1,
        "{k:?} {row}: one instance\n{}",
        r.stderr()
    );
    let st = w.state();
    assert!(
        st["repairs_total"].as_u64().unwrap_or(0) >= 1,
        "{k:?} {row}: counted: {st:#}\n{}",
        r.stderr()
    );
    assert_eq!(st["last_run"]["decision"], "up-to-date", "{k:?} {row}");
    let out = routine_upgrade(w);
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "{k:?} {row}: the routine upgrade must not move it\n{out}"
    );
    // A second run has nothing left to repair.
    let again = w.run(&["run"]);
    again.expect(0);
    assert!(
        !again.stderr().contains("repaired"),
        "{k:?} {row}: converged already\n{}",
        again.stderr()
    );
}

fn unheld_at_target(kind: Kind) {
    control_unheld_moves(kind);
    let w = at_target(kind);
    converge_and_check(&w, "unheld at target");
}
each_backend!(unheld_at_target);

/// The hold removed behind the updater's back (apt-mark unhold, zypper
/// removelock, the exclude= line deleted) after a run that held it.
fn hold_removed_at_target(kind: Kind) {
    let w = at_target(kind);
    w.run(&["run"]).expect(0);
    assert!(held(&w), "{kind:?}: the first run holds");
    match &w {
        World::Apt(a) => a.root.set_hold(PKG, false),
        World::Rpm(r) if r.pm == Pm::Dnf => {
            let p = r.root.file(r.pm.repo_file());
            let text: String = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("exclude"))
                .map(|l| format!("{l}\n"))
                .collect();
            std::fs::write(&p, text).unwrap();
        }
        World::Rpm(r) => {
            let rt = r.root.path();
            let o = Command::new("zypper")
                .env("ZYPP_CONF", rt.join("etc/zypp/zypp.conf"))
                .args(["--non-interactive", "--root"])
                .arg(rt)
                .args(["removelock", PKG])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    }
    assert!(!held(&w), "{kind:?}: the hold is gone");
    converge_and_check(&w, "hold removed");
}
each_backend!(hold_removed_at_target);

/// dpkg stopped between unpacking the target and configuring it (`iU`):
/// the next run finishes it (`dpkg --configure -a`) and holds it.
#[test]
fn half_configured_at_target_apt() {
    let w = World::new(Kind::Apt, "15.4.2", "15.4.3");
    w.schedule_outside_window();
    let World::Apt(a) = &w else { unreachable!() };
    let o = a
        .root
        .dpkg(&["--unpack", common::deb("15.4.3").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let abbrev = a.root.status_abbrev(PKG).unwrap();
    assert!(abbrev.starts_with("iU"), "half-installed: {abbrev:?}");
    converge_and_check(&w, "half-configured");
    assert!(a.root.status_abbrev(PKG).unwrap().starts_with("hi"));
}

/// Two versions in the rpm database (an rpm transaction killed between
/// installing the new version and erasing the old): the older is erased.
fn two_versions_in_the_rpm_database(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_outside_window();
    let World::Rpm(r) = &w else { unreachable!() };
    let o = r.root.rpm(&[
        "-i",
        "--replacefiles",
        rpmworld::fixture().rpm("15.4.3").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(rpm_instances(&w), 2, "{kind:?}: both versions recorded");
    converge_and_check(&w, "two versions");
}
mod two_versions {
    use super::*;
    #[test]
    fn dnf() {
        two_versions_in_the_rpm_database(Kind::Dnf)
    }
    #[test]
    fn zypper() {
        two_versions_in_the_rpm_database(Kind::Zypper)
    }
}

/// Hold an fcntl write lock on `file` in a child process until its stdin
/// closes (dpkg and rpm lock with fcntl).
fn hold_fcntl_lock(file: &std::path::Path) -> std::process::Child {
    let mut c = Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys\nf=open(sys.argv[1],'a+')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\nsys.stdin.read()\n",
        ])
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(c.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    c
}

/// A busy package manager (its lock held, as by an orphaned transaction
/// still running) is waited for up to lock-timeout, then exit 5: the
/// half-done transaction is not "repaired" meanwhile. Once it is free, the
/// next run converges.
fn busy_package_manager_is_not_repaired(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_outside_window();
    w.config("lock-timeout", "1");
    let lock = match &w {
        World::Apt(_) => w.file("/var/lib/dpkg/lock-frontend"),
        World::Rpm(_) => {
            let d = ["/var/lib/rpm", "/usr/lib/sysimage/rpm", "/root/.rpmdb"]
                .iter()
                .map(|d| w.file(d))
                .find(|d| d.is_dir() && !d.is_symlink())
                .unwrap();
            d.join(".rpm.lock")
        }
    };
    let mut holder = hold_fcntl_lock(&lock);
    let r = w.run(&["run"]);
    r.expect(5)
        .logs_contain("the package manager is busy")
        .logs_contain(&format!("is locked by process {} (python3)", holder.id()));
    assert!(!held(&w), "{kind:?}: nothing changed while busy");
    drop(holder.stdin.take());
    holder.wait().unwrap();
    w.run(&["run"]).expect(0);
    assert!(held(&w), "{kind:?}: converged once free");
    let _ = root(&w);
}
each_backend!(busy_package_manager_is_not_repaired);

/// The hold edits the repository definition (dnf `exclude=` in an
/// alternate root): a symlinked definition stays a symlink (the file it
/// names is edited, atomically) and keeps its mode.
#[test]
fn exclude_edit_keeps_symlink_and_mode_dnf() {
    use std::os::unix::fs::PermissionsExt;
    let w = at_target(Kind::Dnf);
    let World::Rpm(r) = &w else { unreachable!() };
    let link = r.root.file(r.pm.repo_file());
    let real = r.root.file("/etc/teleport-repos/teleport.repo");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::rename(&link, &real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A relative link (an absolute one would name a host path in this
    // alternate root, to every tool but the updater).
    std::os::unix::fs::symlink("../teleport-repos/teleport.repo", &link).unwrap();
    w.run(&["run"]).expect(0).logs_contain("repair");
    let meta = std::fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink(), "the link is kept");
    let text = std::fs::read_to_string(&real).unwrap();
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("exclude") && l.contains(PKG)),
        "the file it names holds the exclude:\n{text}"
    );
    let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "mode kept");
}

/// apt's lists lock (`apt-get update` takes it) and archives lock (the
/// download), held by another process as apt-daily and unattended-upgrades
/// hold them at first boot and every morning. The plain apt-get fails at
/// once on them, even with `DPkg::Lock::Timeout` (which covers only dpkg's
/// locks); the updater waits up to lock-timeout, names the holder, then
/// exits 5 ("locked") with nothing changed; once free, the next run
/// updates.
#[test]
fn apt_lists_and_archives_locks_are_waited_for() {
    for lock in ["/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock"] {
        let w = common::AptWorld::new("15.4.2", "15.4.3");
        w.schedule_in_window();
        w.config("lock-timeout", "2");
        let line = w.host_sources_line();
        if lock.contains("archives") {
            let o = w.root.apt_get_with_sources(&line, &["update"]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let path = w.root.file(lock);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut holder = hold_fcntl_lock(&path);
        let pid = holder.id();
        // The plain tool: fails at once, naming the lock.
        let plain_args: &[&str] = if lock.contains("lists") {
            &["-o", "DPkg::Lock::Timeout=5", "update"]
        } else {
            &[
                "-o",
                "DPkg::Lock::Timeout=5",
                "-y",
                "install",
                "--download-only",
                "teleport-ent=15.4.3",
            ]
        };
        let t0 = Instant::now();
        let plain = w.root.apt_get_with_sources(&line, plain_args);
        let text = String::from_utf8_lossy(&plain.stderr).into_owned();
        assert!(
            !plain.status.success() && text.contains("Could not get lock") && text.contains(lock),
            "{lock}: plain apt-get: {text}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{lock}: apt did not wait"
        );
        let held_before = w.held();
        let t0 = Instant::now();
        let r = w.run(&["run"]);
        r.expect(5)
            .logs_contain("the package manager is busy")
            .logs_contain(&format!("{lock} is locked by process {pid} (python3)"));
        assert!(
            t0.elapsed() >= Duration::from_secs(2),
            "{lock}: waited lock-timeout"
        );
        assert_eq!(
            w.installed().as_deref(),
            Some("15.4.2"),
            "{lock}: nothing changed"
        );
        assert_eq!(w.held(), held_before, "{lock}: nothing changed");
        assert_eq!(w.state()["last_run"]["result"], "locked", "{lock}");
        drop(holder.stdin.take());
        holder.wait().unwrap();
        w.run(&["run"]).expect(0);
        assert_eq!(
            w.installed().as_deref(),
            Some("15.4.3"),
            "{lock}: once free"
        );
    }
}
