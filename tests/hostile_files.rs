//! Hostile and damaged files on the host, through the real binary against a
//! real apt root: planted symlinks and a user's `flock` at the lock paths,
//! FIFOs, devices and oversized files where configuration is expected, and
//! damaged or foreign state files. None of them may hang a run, redirect a
//! write, or make a rolled-back target be retried.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::world::apt::AptWorld;

const OLD_LOCK: &str = "/run/lock/teleport-upgrade.lock";
const NEW_LOCK_DIR: &str = "/run/teleport-upgrade";

#[test]
fn a_symlink_and_a_users_flock_at_the_old_lock_path_neither_block_nor_redirect() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    let victim = w.root.file("/etc/victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let old = w.root.file(OLD_LOCK);
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&victim, &old).unwrap();
    // A local user holds flock on the old path (through the link), as long
    // as the run takes.
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&old)
        .args(["sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .expect("flock(1) from util-linux");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        holder.try_wait().unwrap().is_none(),
        "the flock holder runs"
    );
    w.run(&["run"]).expect(0);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    // the lock is in the root-only directory
    let dir = w.root.file(NEW_LOCK_DIR);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dir).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_symlink_planted_at_the_new_lock_path_is_refused_and_never_written_through() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    let victim = w.root.file("/etc/victim");
    std::fs::write(&victim, "precious\n").unwrap();
    // the directory itself a link to a directory of the attacker's
    let elsewhere = w.root.file("/tmp/attacker");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(w.root.file("/run")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, w.root.file(NEW_LOCK_DIR)).unwrap();
    w.run(&["run"]).expect(2).logs_contain("symbolic link");
    assert!(!elsewhere.join("lock").exists());
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    // the file a link to the victim, inside a proper directory
    std::fs::remove_file(w.root.file(NEW_LOCK_DIR)).unwrap();
    std::fs::create_dir(w.root.file(NEW_LOCK_DIR)).unwrap();
    std::os::unix::fs::symlink(&victim, w.root.file("/run/teleport-upgrade/lock")).unwrap();
    w.run(&["run"]).expect(2).logs_contain("symbolic link");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    // status says what it can, and does not follow the link either
    let s = w.run(&["status", "--json"]);
    s.expect(0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn status_names_the_lock_holder_from_the_kernel() {
    let w = AptWorld::new("15.4.2", "15.4.2");
    w.schedule_outside_window();
    w.run(&["run"]).expect(0);
    let lock = w.root.file("/run/teleport-upgrade/lock");
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // a lying pid in the file does not mislead
    std::fs::write(&lock, "1\n").unwrap();
    let s: serde_json::Value =
        serde_json::from_str(&w.run(&["status", "--json"]).stdout()).unwrap();
    let r = w.run(&["run"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(s["lock"], "held");
    assert_eq!(s["lock_holder"], holder.id());
    r.expect(5).logs_contain(&format!("pid {}", holder.id()));
    let s: serde_json::Value =
        serde_json::from_str(&w.run(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(s["lock"], "free");
}

#[test]
fn fifos_devices_and_oversized_files_are_refused_without_hanging() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    let endpoint = w.config_dir().join("endpoint");
    let good = std::fs::read_to_string(&endpoint).unwrap();
    // a FIFO where a value is expected: a clear error naming it, at once
    std::fs::remove_file(&endpoint).unwrap();
    nix::unistd::mkfifo(&endpoint, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let t = Instant::now();
    w.run(&["run"]).expect(2).logs_contain("FIFO");
    assert!(t.elapsed() < Duration::from_secs(20), "no hang on a FIFO");
    // /dev/zero behind a link: refused, not read without bound
    std::fs::remove_file(&endpoint).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &endpoint).unwrap();
    w.run(&["run"]).expect(2).logs_contain("character device");
    // oversized
    std::fs::remove_file(&endpoint).unwrap();
    std::fs::write(&endpoint, vec![b'#'; 70 * 1024]).unwrap();
    w.run(&["run"]).expect(2).logs_contain("larger than 64 KiB");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
    assert_eq!(
        w.version_hits(),
        0,
        "nothing was asked with a bad configuration"
    );
    // a FIFO as the schedule is an unreadable schedule (unhealthy), no hang
    std::fs::write(&endpoint, good).unwrap();
    let schedule = w.config_dir().join("schedule");
    std::fs::remove_file(&schedule).unwrap();
    nix::unistd::mkfifo(&schedule, nix::sys::stat::Mode::S_IRWXU).unwrap();
    w.run(&["run"]).expect(0).logs_contain("FIFO");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"));
}

/// A state file naming 15.4.3 as rolled back, damaged in `how`.
fn damaged_state(how: &str) -> String {
    let good = r#"{
  "schema": 1,
  "updates_total": 3,
  "rollbacks_total": 1,
  "failed_target": {
    "version": "15.4.3",
    "time": 1700000000,
    "why": "systemd restarted teleport.service 4 time(s) in 9 s: a restart loop"
  }
}
"#;
    match how {
        "truncated" => good[..good.len() - 40].to_string(),
        "wrong type" => good.replace("\"updates_total\": 3", "\"updates_total\": \"three\""),
        "newer schema" => good.replace("\"schema\": 1", "\"schema\": 7"),
        // Over the 1 MiB cap, the failed target at its end.
        "oversized" => good.replace(
            "\"updates_total\": 3,",
            &format!(
                "\"updates_total\": 3,\n  \"note\": \"{}\",",
                "x".repeat(1536 * 1024)
            ),
        ),
        _ => unreachable!(),
    }
}

#[test]
fn a_damaged_state_file_never_forgets_the_rolled_back_target() {
    for how in ["truncated", "wrong type", "newer schema", "oversized"] {
        let w = AptWorld::new("15.4.2", "15.4.3");
        w.schedule_in_window();
        let state = w.root.file("/var/lib/teleport-upgrade/state.json");
        std::fs::create_dir_all(state.parent().unwrap()).unwrap();
        let text = damaged_state(how);
        std::fs::write(&state, &text).unwrap();
        // status reads only: it reports the damage and moves nothing
        let s: serde_json::Value =
            serde_json::from_str(&w.run(&["status", "--json"]).stdout()).unwrap();
        let problems = s["problems"].to_string();
        assert!(problems.contains("could not be used"), "{how}: {problems}");
        assert_eq!(std::fs::read_to_string(&state).unwrap(), text, "{how}");
        // the run keeps it aside, recovers the failed target and waits
        w.run(&["run"])
            .expect(0)
            .logs_contain("failed its health check on this host");
        assert_eq!(
            w.installed().as_deref(),
            Some("15.4.2"),
            "{how}: not retried"
        );
        let aside: Vec<_> = std::fs::read_dir(state.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("state.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{how}: kept aside");
        assert_eq!(w.state()["failed_target"]["version"], "15.4.3", "{how}");
        let s: serde_json::Value =
            serde_json::from_str(&w.run(&["status", "--json"]).stdout()).unwrap();
        assert!(
            s["problems"].to_string().contains("kept as"),
            "{how}: status names where it went"
        );
        // a critical update still goes ahead, as for any failed target
        w.set_critical("yes");
        w.run(&["run"]).expect(0);
        assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{how}");
    }
}

/// The plan journal as a FIFO, a link to `/dev/zero`, or a plan whose
/// failed step is past its steps: no run hangs, aborts or reads without
/// bound; the journal is set aside (status reports it and moves nothing),
/// and the run goes on as a fresh one.
#[test]
fn a_hostile_or_inconsistent_journal_is_set_aside() {
    let inconsistent = r#"{"schema":1,"time":1,"command":"run","package":"teleport-ent",
"agent_before":"no-systemd","plan":{"goal":{"kind":"update","from":"15.4.2","to":"15.4.3"},
"steps":[{"step":"refresh"}]},"done":0,"phase":"undoing","failed":7,"why":"x"}"#;
    for how in ["fifo", "dev-zero", "inconsistent"] {
        let w = AptWorld::new("15.4.2", "15.4.3");
        w.schedule_in_window();
        let plan = w.root.file("/var/lib/teleport-upgrade/plan.json");
        std::fs::create_dir_all(plan.parent().unwrap()).unwrap();
        match how {
            "fifo" => nix::unistd::mkfifo(&plan, nix::sys::stat::Mode::S_IRWXU).unwrap(),
            "dev-zero" => std::os::unix::fs::symlink("/dev/zero", &plan).unwrap(),
            _ => std::fs::write(&plan, inconsistent).unwrap(),
        }
        let t = Instant::now();
        let s = w.run(&["status", "--json"]);
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{how}: status does not hang"
        );
        let s: serde_json::Value = serde_json::from_str(&s.stdout()).unwrap();
        assert!(
            s["problems"].to_string().contains("plan.json"),
            "{how}: status reports it: {s:#}"
        );
        assert!(
            plan.symlink_metadata().is_ok(),
            "{how}: status moves nothing"
        );
        let r = w.run(&["run"]);
        r.expect(0).logs_contain("set aside");
        assert!(t.elapsed() < Duration::from_secs(60), "{how}: no hang");
        assert_eq!(
            w.installed().as_deref(),
            Some("15.4.3"),
            "{how}: a fresh run"
        );
        assert!(plan.symlink_metadata().is_err(), "{how}: set aside");
    }
}

/// `/etc/teleport.yaml` as a FIFO or a link to `/dev/zero` (the cluster
/// guard reads it to find the proxy behind a static version server): the
/// guard cannot apply, said at once; the run neither hangs nor grows.
#[test]
fn a_hostile_teleport_yaml_does_not_hang_the_cluster_guard() {
    for how in ["fifo", "dev-zero"] {
        let w = AptWorld::new("15.4.2", "15.4.3");
        w.schedule_in_window();
        // A static version server (not a proxy's channel path): the guard
        // looks for the proxy in teleport.yaml.
        w.vs.set_route("/static/version", testkit::http::Route::ok("15.4.3"));
        w.vs.set_route("/static/critical", testkit::http::Route::ok("no"));
        w.config("endpoint", &format!("127.0.0.1:{}/static", w.vs.port()));
        let yaml = w.root.file("/etc/teleport.yaml");
        let _ = std::fs::remove_file(&yaml);
        match how {
            "fifo" => nix::unistd::mkfifo(&yaml, nix::sys::stat::Mode::S_IRWXU).unwrap(),
            _ => std::os::unix::fs::symlink("/dev/zero", &yaml).unwrap(),
        }
        let t = Instant::now();
        let r = w.run(&["run"]);
        r.expect(0)
            .logs_contain("/etc/teleport.yaml cannot be read");
        assert!(t.elapsed() < Duration::from_secs(60), "{how}: no hang");
    }
}

/// A repository definition that is a FIFO or a link to `/dev/zero` (the
/// backends read the package managers' files through the same bounded
/// reader): a clear error at once, nothing installed, no hang.
#[test]
fn a_hostile_repository_definition_is_refused_without_hanging() {
    for how in ["fifo", "dev-zero"] {
        let w = AptWorld::new("15.4.2", "15.4.3");
        w.schedule_in_window();
        let list = w.root.file("/etc/apt/sources.list.d/teleport.list");
        std::fs::remove_file(&list).unwrap();
        match how {
            "fifo" => nix::unistd::mkfifo(&list, nix::sys::stat::Mode::S_IRWXU).unwrap(),
            _ => std::os::unix::fs::symlink("/dev/zero", &list).unwrap(),
        }
        let t = Instant::now();
        let r = w.run(&["run"]);
        assert_ne!(r.code(), 0, "{how}: {}", r.stderr());
        assert!(t.elapsed() < Duration::from_secs(60), "{how}: no hang");
        assert!(
            r.stderr().contains("FIFO") || r.stderr().contains("character device"),
            "{how}: says what the file is\n{}",
            r.stderr()
        );
        assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{how}");
    }
}
