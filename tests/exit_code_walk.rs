//! The exit-code table walked: every row of `src/exit_table.rs` is
//! produced by a real scenario through the binary (apt, in an alternate
//! root), with the row's word recorded as `last_run.result` in the state
//! file. A row added to the table without a scenario here fails the walk.
//! (Two rows have more words, each produced elsewhere: exit 1's
//! `no-slot` in tests/fleet_lock.rs and `rollout-halted` in
//! tests/fleet_halt.rs, `waiting-for-mirror` (exit 0, then 4 after
//! `mirror-wait`) in tests/mirror_lag.rs and tests/update_decisions.rs.)

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use teleport_upgrade::exit_table::EXITS;
use testkit::http::Route;
use testkit::world::{self, Kind, World};

/// Hold an fcntl write lock on `file` in a child process until its stdin
/// closes (dpkg locks with fcntl).
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
    std::io::BufReader::new(c.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    c
}

/// `run` in `w`, stopped with SIGTERM while paused before its refresh step
/// (the debug build's fail point `before-refresh:pause=<ms>`).
fn run_terminated(w: &World) -> i32 {
    let World::Apt(a) = w else { unreachable!() };
    let mut child = a
        .cmd(&["run"])
        .env("TELEPORT_UPGRADE_FAILPOINT", "before-refresh:pause=3000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The logs are read to the end (a closed pipe would fail the run's
    // own logging).
    let err = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for l in err.lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let l = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the run paused before its refresh step");
        if l.contains("fail point before-refresh: pausing") {
            break;
        }
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let code = child.wait().unwrap().code().unwrap_or(-1);
    reader.join().unwrap();
    code
}

/// One scenario: a world set up for it, and the run's exit code.
fn scenario(code: u8) -> (World, i32) {
    let broken = world::BROKEN;
    let w = match code {
        6 => World::new(Kind::Apt, "15.4.3", broken),
        7 => World::new(Kind::Apt, world::UNPUBLISHED, broken),
        _ => World::new(Kind::Apt, "15.4.2", "15.4.3"),
    };
    w.schedule_in_window();
    let World::Apt(a) = &w else { unreachable!() };
    let got = match code {
        0 => w.run(&["run"]).code(),
        1 => {
            a.set_version_route(Route::status(500, "boom"));
            w.run(&["run"]).code()
        }
        2 => {
            w.config("installer", "bogus");
            w.run(&["run"]).code()
        }
        3 => {
            a.set_target("0.0.1");
            w.run(&["run"]).code()
        }
        4 => {
            // The repository refuses access (403): the update fails. (A
            // target the repository does not offer is exit 4 too once
            // `mirror-wait` has passed, with the word waiting-for-mirror:
            // tests/mirror_lag.rs.)
            for f in ["InRelease", "Release", "Release.gpg"] {
                a.repo_server.set_route(
                    &format!("/dists/bookworm/{f}"),
                    Route::status(403, "denied"),
                );
            }
            w.run(&["run"]).code()
        }
        5 => {
            w.config("lock-timeout", "1");
            let mut h = hold_fcntl_lock(&w.file("/var/lib/dpkg/lock-frontend"));
            let c = w.run(&["run"]).code();
            drop(h.stdin.take());
            h.wait().unwrap();
            c
        }
        6 | 7 => {
            w.set_readiness(w.broken_gate(), "3");
            w.run(&["run"]).code()
        }
        8 => run_terminated(&w),
        _ => panic!("no scenario for exit {code}"),
    };
    (w, got)
}

#[test]
fn every_exit_code_of_the_table_is_produced() {
    let mut missing = Vec::new();
    for row in EXITS {
        let code = row.code();
        let (w, got) = scenario(code);
        if got != i32::from(code) {
            missing.push(format!(
                "exit {code} ({}): the scenario exited {got}",
                row.word
            ));
            continue;
        }
        let result = w.state()["last_run"]["result"].clone();
        // Exit 2 is a configuration error found before any state is
        // written for the run: it may leave no last_run.
        if code != 2 || !result.is_null() {
            assert_eq!(result, row.word, "exit {code}: the recorded result word");
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}
