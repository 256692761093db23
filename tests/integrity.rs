//! The agent's executables are checked on every run, and repaired: a
//! damaged binary at the right version is reinstalled (outside the window
//! too). The check is cheap when nothing
//! changed (a `stat` against the record of the last full verification) and
//! still repairs every kind of damage: through the real binary against real
//! apt/dpkg, dnf/rpm and zypper/rpm.

use testkit::each_backend;
use testkit::world::{Kind, World};

const RECORD: &str = "/var/lib/teleport-upgrade/integrity.json";

fn record(w: &World) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(w.file(RECORD)).expect("the record exists")).unwrap()
}

type Damage = fn(&std::path::Path);

fn damages() -> Vec<(&'static str, Damage)> {
    vec![
        ("truncated", |p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(8)
                .unwrap()
        }),
        ("other bytes, same size and mtime", |p| {
            let before = std::fs::metadata(p).unwrap();
            let mut b = std::fs::read(p).unwrap();
            for x in b.iter_mut().skip(12) {
                *x = b'#';
            }
            std::fs::write(p, &b).unwrap();
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(before.modified().unwrap())
                .unwrap();
            let after = std::fs::metadata(p).unwrap();
            assert_eq!(after.len(), before.len());
            assert_eq!(after.modified().unwrap(), before.modified().unwrap());
        }),
        ("deleted", |p| std::fs::remove_file(p).unwrap()),
    ]
}

fn a_no_op_verifies_in_full_once_then_by_stat_and_still_repairs(kind: Kind) {
    let w = World::new(kind, "15.4.3", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run", "-v"])
        .expect(0)
        .logs_contain("verifying the executables in full: no record");
    let r = record(&w);
    assert_eq!(r["package"], "teleport-ent");
    assert!(r["version"].as_str().unwrap().starts_with("15.4.3"), "{r}");
    let files = r["files"].to_string();
    assert!(files.contains("/usr/bin/teleport"), "{kind:?}: {files}");
    // the next no-op compares stat only
    w.run(&["run", "-v"])
        .expect(0)
        .logs_contain("unchanged since their last full verification");
    // the package database's digests are in the record (dpkg's MD5s,
    // rpm's SHA-256s), so a changed file is checked on its own, at once
    let digest = if kind == Kind::Apt { "md5" } else { "sha256" };
    assert!(
        files.contains(&format!("\"{digest}\"")),
        "{kind:?}: {files}"
    );
    let at_once = "verifying /usr/bin/teleport at once";
    for (name, damage) in damages() {
        damage(&w.file("/usr/bin/teleport"));
        let r = w.run(&["run", "-v"]);
        r.expect(0).logs_contain(at_once).logs_contain("repaired");
        let text = std::fs::read_to_string(w.file("/usr/bin/teleport")).unwrap();
        assert!(text.contains("15.4.3"), "{kind:?} {name}: {text}");
        assert_eq!(
            w.state()["last_run"]["decision"],
            "repair",
            "{kind:?} {name}"
        );
        // repaired and recorded anew: the next no-op is cheap again
        w.run(&["run", "-v"])
            .expect(0)
            .logs_contain("unchanged since their last full verification");
    }
    // a record older than verify-interval means a full verification
    let mut r = record(&w);
    r["verified_at"] = serde_json::json!(r["verified_at"].as_i64().unwrap() - 90_000);
    std::fs::write(w.file(RECORD), r.to_string()).unwrap();
    w.run(&["run", "-v"])
        .expect(0)
        .logs_contain("the last full verification is 25h old");
    // verify-interval 0: every run verifies in full
    w.config("verify-interval", "0");
    w.run(&["run", "-v"])
        .expect(0)
        .logs_contain("verify-interval is 0");
}
each_backend!(a_no_op_verifies_in_full_once_then_by_stat_and_still_repairs);

/// A damage that `stat` cannot see (the record forged to match the damaged
/// file, as a disk fault below the filesystem would leave it) is found by
/// the next slice (dpkg's MD5s, rpm's SHA-256s; the slices' cycle is
/// tested in `integrity_cache::slices`), and never by `stat`.
fn damage_below_the_filesystem_is_found_by_the_periodic_full_check(kind: Kind) {
    let w = World::new(kind, "15.4.3", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run"]).expect(0);
    w.damage_agent_binary();
    // forge the record: the damaged file as the verified one
    let stat = std::fs::symlink_metadata(w.file("/usr/bin/teleport")).unwrap();
    let mut r = record(&w);
    for f in r["files"].as_array_mut().unwrap() {
        if f["path"] == "/usr/bin/teleport" {
            use std::os::unix::fs::MetadataExt;
            f["dev"] = stat.dev().into();
            f["ino"] = stat.ino().into();
            f["size"] = stat.size().into();
            f["mode"] = stat.mode().into();
            f["mtime"] = stat.mtime().into();
            f["mtime_nsec"] = stat.mtime_nsec().into();
            f["ctime"] = stat.ctime().into();
            f["ctime_nsec"] = stat.ctime_nsec().into();
        }
    }
    std::fs::write(w.file(RECORD), r.to_string()).unwrap();
    w.run(&["run", "-v"])
        .expect(0)
        .logs_contain("unchanged since their last full verification");
    assert_eq!(
        w.state()["last_run"]["decision"],
        "up-to-date",
        "stat cannot see it"
    );
    // half of verify-interval later, this package (smaller than a batch)
    // is owed in full, so the next run hashes all of it (the runs in
    // between hash nothing: see integrity_cache::slices)
    let mut r = record(&w);
    r["verified_at"] = serde_json::json!(r["verified_at"].as_i64().unwrap() - 43_201);
    std::fs::write(w.file(RECORD), r.to_string()).unwrap();
    w.run(&["run", "-v"])
        .expect(0)
        .logs_contain("hashed the next slice")
        .logs_contain("repaired");
    assert_eq!(w.state()["last_run"]["decision"], "repair");
}
each_backend!(damage_below_the_filesystem_is_found_by_the_periodic_full_check);

/// The right version with a damaged binary is reinstalled (outside the
/// window too: the agent is broken), then verifies.
fn a_damaged_binary_is_repaired(kind: Kind) {
    let w = World::new(kind, "15.4.3", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("the installed version is the target");
    w.damage_agent_binary();
    let dry = w.run(&["dry-run"]);
    dry.expect(0);
    assert!(
        dry.stdout().contains("repair:") && dry.stdout().contains("/usr/bin/teleport"),
        "{}",
        dry.stdout()
    );
    let r = w.run(&["run"]);
    eprintln!("{kind:?}:\n{}", r.stderr());
    r.expect(0)
        .logs_contain("do not verify")
        .logs_contain("repaired");
    let text = std::fs::read_to_string(w.file("/usr/bin/teleport")).unwrap();
    assert!(text.contains("15.4.3"), "{text}");
    assert_eq!(w.state()["last_run"]["decision"], "repair");
    w.run(&["run"])
        .expect(0)
        .logs_contain("the installed version is the target");
    assert_eq!(w.state()["last_run"]["decision"], "up-to-date");
}
each_backend!(a_damaged_binary_is_repaired);

/// dpkg's database is read at most once per run, and not at all when a
/// `stat` of `status` and `updates/` matches the last run's record; a
/// change made by dpkg itself (a selection changed with `dpkg
/// --set-selections`) is seen by the next run.
#[test]
fn a_change_of_dpkgs_database_is_seen_through_the_record() {
    let w = testkit::world::apt::AptWorld::new("15.4.3", "15.4.3");
    w.schedule_outside_window();
    let set = |selection: &str| {
        let mut c = std::process::Command::new("dpkg");
        c.arg(format!("--admindir={}", w.root.admindir().display()))
            .arg("--set-selections")
            .stdin(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        let line = format!("teleport-ent {selection}\n");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(line.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        // older than the racy window, so that the next run records it
        std::thread::sleep(std::time::Duration::from_millis(2500));
    };
    set("hold");
    let r = w.run(&["run", "-v"]);
    r.expect(0).logs_contain("held=\"yes\"");
    assert!(w.root.file(DPKG_RECORD).exists(), "recorded");
    let r = w.run(&["run", "-v"]);
    r.expect(0)
        .logs_contain("held=\"yes\"")
        .logs_contain("dpkg's database is unchanged since it was recorded");
    set("install");
    let r = w.run(&["run", "-v"]);
    r.expect(0).logs_contain("held=\"no\"");
    assert!(!r.stderr().contains("unchanged since it was recorded"));
}

const DPKG_RECORD: &str = "/var/lib/teleport-upgrade/dpkg-status.txt";
