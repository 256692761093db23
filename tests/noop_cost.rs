//! What a no-op run costs on an apt host, counted by the kernel: it starts
//! no child process (the hold, the installed version and an interrupted
//! transaction are read from dpkg's database in process; the repository
//! is looked up only when a plan needs it) and opens dpkg's `status` file
//! at most once, not at all once its stat matches the last run's record.
//! Through the real binary under `strace -f` (Debian's strace).

use std::process::Command;

use testkit::world::apt::AptWorld;

/// `c` run under `strace -f -qq -s 400 <opts> -o trace` in `c`'s own
/// environment (plus PATH and HOME): what it wrote to `trace`.
fn strace(c: &Command, opts: &[&str], trace: &std::path::Path) -> String {
    let mut s = Command::new("strace");
    s.args(["-f", "-qq", "-s", "400"])
        .args(opts)
        .arg("-o")
        .arg(trace)
        .arg(c.get_program())
        .args(c.get_args());
    s.env_clear();
    for (k, v) in c.get_envs() {
        if let Some(v) = v {
            s.env(k, v);
        }
    }
    for k in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(k) {
            s.env(k, v);
        }
    }
    let out = s.output().expect("strace (Debian's strace package)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(trace).unwrap()
}

/// `execve` calls, opens of dpkg's `status` and `fsync`/`fdatasync` calls
/// in one traced `run`.
fn traced_run(w: &AptWorld, trace: &std::path::Path) -> (usize, usize, usize) {
    let events = "trace=execve,openat,fsync,fdatasync,mkdir,mkdirat,ftruncate,truncate";
    let text = strace(&w.cmd(&["run"]), &["-e", events], trace);
    let execs = text
        .lines()
        .filter(|l| l.contains("execve(") && !l.contains("ENOENT"))
        .count();
    let status = w.root.file("/var/lib/dpkg/status");
    let opens = text
        .lines()
        .filter(|l| l.contains("openat(") && l.contains(&format!("\"{}\"", status.display())))
        .filter(|l| !l.contains("= -"))
        .count();
    let syncs = text
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .count();
    (execs, opens, syncs)
}

#[test]
fn an_apt_no_op_starts_no_child_and_reads_dpkgs_status_at_most_once() {
    let w = AptWorld::new("15.4.3", "15.4.3");
    w.schedule_outside_window();
    // The first run converges (holds the agent: dpkg runs) and records.
    w.run(&["run"]).expect(0);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let d = tempfile::tempdir().unwrap();
    let (execs, opens, _) = traced_run(&w, &d.path().join("t1"));
    assert_eq!(execs, 1, "only the updater itself is executed");
    assert!(
        opens <= 1,
        "dpkg's status opened {opens} times:\n{}",
        std::fs::read_to_string(d.path().join("t1")).unwrap()
    );
    let (execs, opens, syncs) = traced_run(&w, &d.path().join("t2"));
    assert_eq!(execs, 1, "only the updater itself is executed");
    assert_eq!(
        syncs,
        0,
        "a no-op waits for the disk (only volatile fields of the state changed):\n{}",
        std::fs::read_to_string(d.path().join("t2")).unwrap()
    );
    // Nothing is made for commands that do not run (apt's private
    // configuration directories), and the run lock's pid is written over
    // the old one (a truncation to zero on ext4 frees the block and makes
    // the close flush it).
    let t2 = std::fs::read_to_string(d.path().join("t2")).unwrap();
    let made: Vec<&str> = t2
        .lines()
        .filter(|l| (l.contains("mkdir(") || l.contains("mkdirat(")) && l.ends_with("= 0"))
        .collect();
    assert!(made.is_empty(), "a no-op creates directories: {made:#?}");
    let truncs: Vec<&str> = t2.lines().filter(|l| l.contains("truncate(")).collect();
    assert!(truncs.is_empty(), "a no-op truncates: {truncs:#?}");
    assert_eq!(
        opens, 0,
        "dpkg's status is not read when its stat is unchanged"
    );
    // Control: a change of dpkg's database is read (and the hold it
    // undid is repaired, which runs dpkg and changes it again).
    w.root.set_hold(world_pkg(), false);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (execs, opens, syncs) = traced_run(&w, &d.path().join("t3"));
    assert!(opens >= 1, "a changed database is read");
    assert!(execs > 1, "the hold is repaired (dpkg runs)");
    assert!(
        syncs >= 1,
        "a repair (counted in the state) is written to disk with fsync"
    );
    assert!(w.held());
}

fn world_pkg() -> &'static str {
    testkit::world::PKG
}

/// The `rpm` processes of one traced no-op on an rpm host, by their
/// arguments.
fn rpm_execs(w: &testkit::world::World, trace: &std::path::Path) -> Vec<String> {
    execs_of(w, trace, "/usr/bin/rpm")
}

/// The processes running `program` in one traced no-op, by their arguments.
fn execs_of(w: &testkit::world::World, trace: &std::path::Path, program: &str) -> Vec<String> {
    strace(&w.cmd(&["run"]), &["-e", "trace=execve"], trace)
        .lines()
        .filter(|l| l.contains(&format!("execve(\"{program}\"")) && !l.contains("ENOENT"))
        .map(str::to_string)
        .collect()
}

/// Which agent package is installed (teleport-ent-fips, teleport-ent,
/// teleport) is one `rpm -q` on a no-op, not one per candidate.
fn an_rpm_no_op_asks_rpm_once_for_the_agent_package(kind: testkit::world::Kind) {
    let w = testkit::world::World::new(kind, "15.4.3", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run"]).expect(0);
    let d = tempfile::tempdir().unwrap();
    let execs = rpm_execs(&w, &d.path().join("t"));
    let asked: Vec<&String> = execs
        .iter()
        .filter(|l| l.contains("\"teleport-ent-fips\""))
        .collect();
    // none when the first run could already record the database's state
    assert!(asked.len() <= 1, "{kind:?}: {execs:#?}");
    assert!(
        asked
            .iter()
            .all(|a| a.contains("\"teleport-ent\"") && a.contains("\"teleport\"")),
        "{kind:?}: {asked:#?}"
    );
}

/// A no-op on an rpm host whose database is unchanged since the last run
/// starts no rpm process at all (the agent's rows, and rpm's default
/// database location, come from the last run's record); once the database
/// changes, rpm is asked again.
fn an_rpm_no_op_at_rest_starts_no_rpm(kind: testkit::world::Kind) {
    let w = testkit::world::World::new(kind, "15.4.3", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run"]).expect(0);
    // the database older than the racy window: this run records it
    std::thread::sleep(std::time::Duration::from_millis(2100));
    w.run(&["run"]).expect(0);
    let d = tempfile::tempdir().unwrap();
    let execs = rpm_execs(&w, &d.path().join("t1"));
    assert!(execs.is_empty(), "{kind:?}: rpm ran: {execs:#?}");
    // Control: a change of the database (rebuilt: new files) is seen.
    let testkit::world::World::Rpm(rw) = &w else {
        panic!("an rpm world")
    };
    assert!(rw.root.rpm(&["--rebuilddb"]).status.success());
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let execs = rpm_execs(&w, &d.path().join("t2"));
    assert!(
        execs.iter().any(|l| l.contains("\"teleport-ent\"")),
        "{kind:?}: a changed database is asked: {execs:#?}"
    );
    let execs = rpm_execs(&w, &d.path().join("t3"));
    assert!(execs.is_empty(), "{kind:?}: recorded again: {execs:#?}");
}

#[test]
fn a_dnf_no_op_at_rest_starts_no_rpm() {
    an_rpm_no_op_at_rest_starts_no_rpm(testkit::world::Kind::Dnf);
}

#[test]
fn a_zypper_no_op_at_rest_starts_no_rpm() {
    an_rpm_no_op_at_rest_starts_no_rpm(testkit::world::Kind::Zypper);
}

#[test]
fn a_dnf_no_op_asks_rpm_once_for_the_agent_package() {
    an_rpm_no_op_asks_rpm_once_for_the_agent_package(testkit::world::Kind::Dnf);
}

#[test]
fn a_zypper_no_op_asks_rpm_once_for_the_agent_package() {
    an_rpm_no_op_asks_rpm_once_for_the_agent_package(testkit::world::Kind::Zypper);
}

/// The `execve` and `fsync` lines of one traced `run` (`strace -f -y`:
/// file descriptors shown with their paths).
fn traced_update(w: &AptWorld, trace: &std::path::Path) -> String {
    strace(
        &w.cmd(&["run"]),
        &["-y", "-e", "trace=execve,fsync,fdatasync"],
        trace,
    )
}

/// What an apt update adds to the bare refresh, install and hold, counted
/// by the kernel: no `dpkg --audit` (dpkg's `status` read in process, its
/// journal empty; it was one to name the unfinished and
/// one more to decide), repository queries that leave dpkg's `status` and
/// the host's `pkgcache.bin` alone, and the plan journal waiting for the
/// disk only around the install and the hold (not after every step).
#[test]
fn an_apt_update_forks_no_audit_and_syncs_its_journal_around_package_changes() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    let d = tempfile::tempdir().unwrap();
    let text = traced_update(&w, &d.path().join("trace"));
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    let execs: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("execve(") && !l.contains("ENOENT"))
        .collect();
    let audits = execs.iter().filter(|l| l.contains("\"--audit\"")).count();
    assert_eq!(audits, 0, "{execs:#?}");
    let queries: Vec<&&str> = execs
        .iter()
        .filter(|l| l.contains("/apt-cache\"") && l.contains("Dir::Etc::SourceParts=-"))
        .collect();
    assert!(!queries.is_empty(), "{execs:#?}");
    for q in &queries {
        assert!(
            q.contains("\"Dir::State::status=/dev/null\"")
                && q.contains("\"Dir::Cache::pkgcache=\""),
            "{q}"
        );
    }
    let state_dir = w.root.file("/var/lib/teleport-upgrade");
    let syncs = text
        .lines()
        .filter(|l| l.contains("fsync(") || l.contains("fdatasync("))
        .filter(|l| l.contains(&state_dir.display().to_string()))
        .count();
    // The plan (2: file and directory), before the install, after it,
    // after the hold (2 each), the kept package's record (1), the
    // journal's removal (1), the state file (2): 14. With every step's
    // record synced: 26.
    assert!(
        syncs <= 14,
        "{syncs} fsyncs in the state directory:\n{text}"
    );
}

/// A zypper no-op at rest does not ask zypper whether the agent is held
/// (zypper's answer of the last run is recorded with the `stat` of
/// zypp.conf, the locks file, zypper and the rpm database); once the
/// locks file changes, zypper is asked again.
#[test]
fn a_zypper_no_op_at_rest_starts_no_zypper() {
    let w = testkit::world::World::new(testkit::world::Kind::Zypper, "15.4.3", "15.4.3");
    w.schedule_outside_window();
    w.run(&["run"]).expect(0);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    w.run(&["run"]).expect(0);
    let d = tempfile::tempdir().unwrap();
    let execs = execs_of(&w, &d.path().join("t1"), "/usr/bin/zypper");
    assert!(execs.is_empty(), "zypper ran: {execs:#?}");
    // Control: the locks file rewritten (same lines, a new file) is seen.
    let testkit::world::World::Rpm(rw) = &w else {
        panic!("an rpm world")
    };
    let locks = rw.root.read("/etc/zypp/locks");
    assert!(locks.contains(testkit::world::PKG), "held: {locks}");
    std::fs::remove_file(rw.root.file("/etc/zypp/locks")).unwrap();
    rw.root.write("/etc/zypp/locks", &locks);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let execs = execs_of(&w, &d.path().join("t2"), "/usr/bin/zypper");
    assert_eq!(
        execs.len(),
        1,
        "a changed locks file is read by zypper: {execs:#?}"
    );
    let execs = execs_of(&w, &d.path().join("t3"), "/usr/bin/zypper");
    assert!(execs.is_empty(), "recorded again: {execs:#?}");
}
