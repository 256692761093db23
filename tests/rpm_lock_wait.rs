//! rpm's transaction lock taken by another process after the run's busy
//! check (another dnf, zypper or rpm commits first): the install waits for
//! it, up to `lock-timeout`, naming the holder, then exits 5 (locked)
//! with the agent unchanged. (Before: dnf and zypper failed at once, "can't
//! create transaction lock", exit 4.)
//!
//! The run is paused just before its install step (the debug build's fail
//! point `before-install:pause=<ms>`), and the lock is taken then, with an
//! fcntl lock like rpm's own.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use testkit::world;
use testkit::world::rpm::{Pm, RpmWorld};

/// Hold an fcntl write lock on `file` in a child process until its stdin
/// closes.
fn hold_fcntl_lock(file: &std::path::Path) -> Child {
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
    std::io::BufReader::new(c.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    c
}

/// The rpm database's lock file in `w`'s root.
fn rpm_lock(w: &RpmWorld) -> std::path::PathBuf {
    ["/var/lib/rpm", "/usr/lib/sysimage/rpm", "/root/.rpmdb"]
        .iter()
        .map(|d| w.root.file(d))
        .find(|d| d.is_dir() && !d.is_symlink())
        .unwrap()
        .join(".rpm.lock")
}

/// Run the updater, take rpm's lock when it pauses before its install
/// step, release it after `hold` (never, when `None`); the exit code, the
/// logs and the holder's pid.
fn run_with_lock_taken(w: &RpmWorld, hold: Option<Duration>) -> (i32, String, u32) {
    let mut c = world::command(w.root.path(), &["run"]);
    c.env("TELEPORT_UPGRADE_FAILPOINT", "before-install:pause=1500");
    c.stderr(Stdio::piped()).stdout(Stdio::null());
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    loop {
        let l = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the run reached the fail point");
        if l.contains("fail point before-install: pausing") {
            break;
        }
    }
    let mut holder = hold_fcntl_lock(&rpm_lock(w));
    let pid = holder.id();
    if let Some(d) = hold {
        std::thread::sleep(d);
        drop(holder.stdin.take());
    }
    let status = child.wait().unwrap();
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let logs = reader.join().unwrap();
    eprintln!("{logs}");
    (status.code().unwrap_or(-1), logs, pid)
}

fn released_in_time(pm: Pm) {
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.config("lock-timeout", "60");
    let (code, logs, pid) = run_with_lock_taken(&w, Some(Duration::from_secs(4)));
    assert_eq!(code, 0, "{pm:?}: waited for the lock, then updated");
    assert!(logs.contains("can't create transaction lock"), "{pm:?}");
    assert!(
        logs.contains(&format!("held by process {pid} (python3)")),
        "{pm:?}: the holder is named"
    );
    assert!(logs.contains("waiting up to"), "{pm:?}");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"), "{pm:?}");
}

fn held_past_lock_timeout(pm: Pm) {
    let w = RpmWorld::new(pm, "15.4.2", "15.4.3");
    w.schedule_in_window();
    w.config("lock-timeout", "3");
    let (code, logs, pid) = run_with_lock_taken(&w, None);
    assert_eq!(code, 5, "{pm:?}: locked, after lock-timeout");
    assert!(
        logs.contains(&format!("held by process {pid} (python3)")),
        "{pm:?}: the holder is named"
    );
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{pm:?}");
    assert_eq!(
        world::read_state(w.root.path())["last_run"]["result"],
        "locked"
    );
}

#[test]
fn dnf_waits_for_rpms_lock_then_updates() {
    released_in_time(Pm::Dnf)
}

#[test]
fn dnf_rpm_lock_held_past_lock_timeout_is_locked() {
    held_past_lock_timeout(Pm::Dnf)
}

#[test]
fn zypper_waits_for_rpms_lock_then_updates() {
    released_in_time(Pm::Zypper)
}

#[test]
fn zypper_rpm_lock_held_past_lock_timeout_is_locked() {
    held_past_lock_timeout(Pm::Zypper)
}
