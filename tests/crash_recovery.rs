//! A run killed or stopped at any step boundary leaves a host that the next
//! plain `run` converges: the agent at the target (or rolled back), fully
//! installed, held, the channel file as it should be, the state consistent.
//!
//! Through the real binary on real apt/dpkg, dnf/rpm and zypper/rpm. The
//! kills come from the binary's fail points
//! (`TELEPORT_UPGRADE_FAILPOINT=<point>[:kill|:fail]`, honoured only in
//! debug builds), from `SIGTERM` while dpkg runs a postinst, and from
//! `kill -9` during the health wait.
//!
//! The run after a kill happens OUTSIDE the maintenance window: an update
//! whose install is done is finished (restart, health check, rollback),
//! one that had not installed yet is abandoned (a fresh run would not
//! update now), and the host is converged either way (held, transaction
//! finished). The full table of changes since the kill is
//! `tests/resume_table.rs`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::each_backend;
use testkit::http::Route;
use testkit::world::apt::AptWorld;
use testkit::world::{self, Kind, World};

const PKG: &str = world::PKG;

/// The updater's command on `w`, with `failpoint` (or none) as
/// `TELEPORT_UPGRADE_FAILPOINT`.
fn cmd(w: &World, args: &[&str], failpoint: Option<&str>) -> Command {
    let mut c = w.cmd(args);
    c.env_remove("TELEPORT_UPGRADE_FAILPOINT");
    if let Some(p) = failpoint {
        c.env("TELEPORT_UPGRADE_FAILPOINT", p);
    }
    c
}

/// Run the update, killed (SIGKILL, by the binary's fail point) at `point`.
#[track_caller]
fn run_killed_at(w: &World, point: &str) {
    use std::os::unix::process::ExitStatusExt;
    let out = cmd(w, &["run"], Some(point)).output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{:?} {point}: killed\n{}",
        w.kind(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the agent is held, read from each package manager's own record:
/// dpkg's selection, dnf's `exclude=` in the repository definition (the
/// hold method in an alternate root), zypper's locks file.
fn held(w: &World) -> bool {
    match w {
        World::Apt(a) => a.held(),
        World::Rpm(r) if r.pm == world::rpm::Pm::Dnf => {
            let text = std::fs::read_to_string(r.root.file(r.pm.repo_file())).unwrap();
            text.lines()
                .any(|l| l.trim_start().starts_with("exclude") && l.contains(PKG))
        }
        World::Rpm(r) => std::fs::read_to_string(r.root.file("/etc/zypp/locks"))
            .unwrap_or_default()
            .contains(PKG),
    }
}

/// The package is fully installed: dpkg `ii`/`hi`; one instance in the
/// rpm database.
fn fully_installed(w: &World) -> bool {
    match w {
        World::Apt(a) => a
            .root
            .status_abbrev(PKG)
            .is_some_and(|s| s.starts_with("ii") || s.starts_with("hi")),
        World::Rpm(r) => {
            let out = r.root.rpm(&["-q", PKG]);
            String::from_utf8_lossy(&out.stdout).lines().count() == 1
        }
    }
}

fn journal(w: &World) -> PathBuf {
    w.file("/var/lib/teleport-upgrade/plan.json")
}

/// Assert the host converged to `version`: installed, fully, held, no
/// journal left, the last run ok.
#[track_caller]
fn assert_converged(w: &World, version: &str, what: &str) {
    let k = w.kind();
    assert_eq!(
        w.installed().as_deref(),
        Some(version),
        "{k:?} {what}: version"
    );
    assert!(fully_installed(w), "{k:?} {what}: fully installed");
    assert!(held(w), "{k:?} {what}: held");
    assert!(!journal(w).exists(), "{k:?} {what}: journal closed");
    let st = w.state();
    assert_eq!(st["last_run"]["result"], "ok", "{k:?} {what}: {st:#}");
}

/// The fail points of an update without a health check, in plan order.
const POINTS: &[&str] = &[
    "before-finish-transaction",
    "after-finish-transaction",
    "before-refresh",
    "after-refresh",
    "after-keep-previous",
    "before-install",
    "after-install",
    "before-hold",
    "after-hold",
    "after-check-install",
];

/// Kill the update 15.4.2 -> 15.4.3 at every step boundary; the next plain
/// run, outside the window, finishes it when its install is done, and
/// otherwise abandons it (a fresh run would wait): never installs outside
/// the window, always converges (held, no journal left).
fn kill_at_every_boundary_then_converge(kind: Kind) {
    let started = Instant::now();
    let mut table = Vec::new();
    for point in POINTS {
        let w = World::new(kind, "15.4.2", "15.4.3");
        w.schedule_in_window();
        run_killed_at(&w, point);
        assert!(
            journal(&w).exists(),
            "{kind:?} {point}: the journal is left"
        );
        let after_kill = (w.installed(), held(&w));
        let installed = after_kill.0.as_deref() == Some("15.4.3");
        // status and dry-run say what the next run will do.
        let s = w.run(&["status", "--json"]);
        let s: serde_json::Value = serde_json::from_str(&s.stdout()).unwrap();
        assert!(
            s["unfinished_plan"]
                .as_str()
                .unwrap_or("")
                .contains("15.4.3"),
            "{kind:?} {point}: status shows the plan: {s:#}"
        );
        w.schedule_outside_window();
        let dry = w.run(&["dry-run"]);
        let says = if installed {
            "resume:    finish it"
        } else {
            "resume:    abandon it"
        };
        assert!(
            dry.stdout().contains(says),
            "{kind:?} {point}: dry-run says {says:?}: {}",
            dry.stdout()
        );
        let r = w.run(&["run"]);
        r.expect(0)
            .logs_contain("an earlier run left a plan unfinished");
        let want = if installed { "15.4.3" } else { "15.4.2" };
        assert_converged(&w, want, point);
        assert!(
            !w.file("/var/lib/teleport-upgrade/previous").exists(),
            "{kind:?} {point}: no kept package left behind"
        );
        if !installed {
            r.logs_contain("abandoned the unfinished plan");
            let st = w.state();
            assert_eq!(st["abandoned_total"], 1, "{kind:?} {point}: {st:#}");
        }
        table.push(format!(
            "{kind:?} {point:<26} killed: {:?} held={} -> next run outside the window: {want} held ({})",
            after_kill.0,
            after_kill.1,
            if installed { "finished" } else { "abandoned" }
        ));
    }
    for row in table {
        eprintln!("FAULT {row}");
    }
    eprintln!(
        "FAULT {kind:?} took {:.1} s",
        started.elapsed().as_secs_f32()
    );
}
each_backend!(kill_at_every_boundary_then_converge);

/// A fail point that fails a step (not a kill): the update fails cleanly
/// (exit 4), nothing is left in the journal, and the next run converges.
fn failed_step_undoes_and_closes_the_journal(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    let out = cmd(&w, &["run"], Some("before-hold:fail"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{kind:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!journal(&w).exists(), "{kind:?}: undone and closed");
    w.schedule_outside_window();
    w.run(&["run"]).expect(0);
    assert_converged(&w, "15.4.3", "after a failed hold");
    assert_eq!(
        w.state()["abandoned_total"],
        0,
        "{kind:?}: nothing was left to abandon"
    );
}
each_backend!(failed_step_undoes_and_closes_the_journal);

fn with_readyz(w: &World, route: Route, timeout: &str) {
    w.set_vs_route("/readyz", route);
    w.config("diag-addr", &format!("127.0.0.1:{}", w.vs_port()));
    w.config("health-timeout", timeout);
}

/// Start `run` and return it once its logs contain `needle`.
fn spawn_until(
    w: &World,
    needle: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = cmd(w, &["run"], None)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
                if l.contains(needle) {
                    return (child, rx);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => {
                let status = child.wait();
                panic!("the run ended ({status:?}) before {needle:?}:\n{seen}")
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no {needle:?} in:\n{seen}");
        }
    }
}

/// `kill -9` during the post-update health wait: the next run verifies the
/// new version (healthy now: kept) ...
fn kill_during_health_wait_then_verified(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    with_readyz(&w, Route::status(503, "not ready"), "60");
    let (mut child, _rx) = spawn_until(&w, "waiting for the agent to be healthy");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(journal(&w).exists(), "{kind:?}: the verify step is pending");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    with_readyz(&w, Route::ok("ok"), "10");
    w.schedule_outside_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("an earlier run left a plan unfinished")
        .logs_contain("the agent is healthy");
    assert_converged(&w, "15.4.3", "verified after the kill");
}
each_backend!(kill_during_health_wait_then_verified);

/// ... or, still unhealthy (15.4.4 ships the marker the readiness
/// stand-in answers 503 for), rolls it back and records the failed target.
fn kill_during_health_wait_then_rolled_back(kind: Kind) {
    let w = World::new(kind, "15.4.2", world::BROKEN);
    w.schedule_in_window();
    let gate = || {
        Route::gate(
            &w.file(world::BROKEN_MARKER),
            Route::status(503, "not ready"),
            Route::ok("ok"),
        )
    };
    with_readyz(&w, gate(), "60");
    let (mut child, _rx) = spawn_until(&w, "waiting for the agent to be healthy");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(w.installed().as_deref(), Some(world::BROKEN));
    with_readyz(&w, gate(), "2");
    w.schedule_outside_window();
    let r = w.run(&["run"]);
    r.expect(6).logs_contain("rolling back to 15.4.2");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{kind:?}");
    assert!(held(&w) && fully_installed(&w), "{kind:?}");
    assert!(!journal(&w).exists(), "{kind:?}");
    let st = w.state();
    assert_eq!(
        st["failed_target"]["version"],
        world::BROKEN,
        "{kind:?} {st:#}"
    );
    // The next run does not retry it, and converges nothing more.
    w.run(&["run"]).expect(0);
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{kind:?}");
}
each_backend!(kill_during_health_wait_then_rolled_back);

/// A shell and `sleep`/`touch` inside an apt root, so a maintainer script
/// can run (`dpkg --root` runs them chrooted into the root).
fn give_root_a_shell(root: &std::path::Path) {
    testkit::aptroot::give_root_programs(
        root,
        &[
            ("/bin/dash", "bin/sh"),
            ("/bin/sleep", "bin/sleep"),
            ("/usr/bin/touch", "bin/touch"),
        ],
    );
}

/// `SIGTERM` (what systemd sends on stop) while dpkg runs the target's
/// postinst: dpkg is let finish (the postinst runs to its end), the hold
/// is made, the run exits 8 with the health check left in the journal;
/// the next plain run, outside the window, finishes it.
#[test]
fn sigterm_during_the_postinst_lets_dpkg_finish() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    give_root_a_shell(w.root.path());
    let mut spec = world::apt::deb_spec("15.4.3");
    spec.postinst =
        Some("touch /var/tmp/postinst-started\nsleep 3\ntouch /var/tmp/postinst-done\n".into());
    let debs_dir = w.dir.path().join("slow-debs");
    std::fs::create_dir_all(&debs_dir).unwrap();
    let slow = testkit::deb::build_deb(&spec, &debs_dir);
    let _server = w.publish_only("slow-repo", &[slow]);
    w.vs.set_route("/readyz", Route::ok("ok"));
    w.config("diag-addr", &format!("127.0.0.1:{}", w.vs.port()));
    w.config("health-timeout", "10");
    w.schedule_in_window();

    let mut child = w.spawn(&["run"]);
    let started = w.root.file("/var/tmp/postinst-started");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !started.exists() {
        assert!(
            Instant::now() < deadline,
            "the postinst never started: {:?}",
            child.try_wait()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "exit 8 after SIGTERM\n{stderr}");
    assert!(
        w.root.file("/var/tmp/postinst-done").exists(),
        "dpkg (and its postinst) ran to the end\n{stderr}"
    );
    let abbrev = w.root.status_abbrev(PKG).unwrap();
    assert!(abbrev.starts_with("hi"), "installed and held: {abbrev:?}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    let journal = w.root.file("/var/lib/teleport-upgrade/plan.json");
    assert!(
        journal.exists(),
        "the health check is left for the next run"
    );
    assert_eq!(w.state()["last_run"]["result"], "interrupted");
    // The install completed before the signal: it is counted, once.
    assert_eq!(w.state()["updates_total"], 1, "counted by the stopped run");
    assert!(w.state()["last_update"].is_i64());

    w.schedule_outside_window();
    let r = w.run(&["run"]);
    r.expect(0)
        .logs_contain("an earlier run left a plan unfinished")
        .logs_contain("the agent is healthy");
    assert!(!journal.exists());
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
    assert!(w.held());
    assert_eq!(w.state()["updates_total"], 1, "not counted again");
}

/// Killed while undoing (the rollback of an unhealthy 15.4.4 had begun):
/// the next run applies the undos again and ends rolled back (exit 6),
/// the failed target recorded.
fn kill_during_the_rollback_then_rolled_back(kind: Kind) {
    let w = World::new(kind, "15.4.2", world::BROKEN);
    w.schedule_in_window();
    let gate = Route::gate(
        &w.file(world::BROKEN_MARKER),
        Route::status(503, "not ready"),
        Route::ok("ok"),
    );
    with_readyz(&w, gate, "2");
    run_killed_at(&w, "before-undo");
    assert_eq!(w.installed().as_deref(), Some(world::BROKEN));
    let dry = w.run(&["dry-run"]);
    assert!(
        dry.stdout().contains("resume:    finish its rollback"),
        "{kind:?}: {}",
        dry.stdout()
    );
    w.schedule_outside_window();
    w.run(&["run"])
        .expect(6)
        .logs_contain("an earlier run left a plan unfinished");
    assert_eq!(w.installed().as_deref(), Some("15.4.2"), "{kind:?}");
    assert!(held(&w) && fully_installed(&w) && !journal(&w).exists());
    assert_eq!(w.state()["failed_target"]["version"], world::BROKEN);
}
each_backend!(kill_during_the_rollback_then_rolled_back);

/// A major update that moves the channel (stable/v15 -> stable/v16),
/// killed right after the move, after the install, or before keeping the
/// move: the next run, outside the window, finishes it once installed
/// (16.0.0 held, the definition on stable/v16), and otherwise abandons it
/// and puts the definition back (15.4.3 held, stable/v15); no backup left.
fn kill_around_a_channel_move_then_converge(kind: Kind) {
    for point in ["after-channel-move", "after-install", "before-keep-channel"] {
        let w = World::new(kind, "15.4.3", "16.0.0");
        w.point_at_channel_site(world::channel_site());
        w.schedule_in_window();
        run_killed_at(&w, point);
        w.schedule_outside_window();
        let r = w.run(&["run"]);
        r.expect(0);
        let (want, channel, other) = match point {
            "after-channel-move" => ("15.4.3", "stable/v15", "stable/v16"),
            _ => ("16.0.0", "stable/v16", "stable/v15"),
        };
        assert_converged(&w, want, point);
        let def = w.repo_definition();
        assert!(
            def.contains(channel) && !def.contains(other),
            "{kind:?} {point}: {def}"
        );
        let backup = format!(
            "{}.teleport-upgrade.bak",
            w.repo_definition_path().display()
        );
        assert!(
            !std::path::Path::new(&backup).exists(),
            "{kind:?} {point}: backup removed\n{}",
            r.stderr()
        );
        eprintln!("FAULT {kind:?} {point:<26} -> {want} held, {channel}, no backup");
    }
}
each_backend!(kill_around_a_channel_move_then_converge);

/// The same kill right after the channel move, on a host whose agent was
/// held already (the common case): the next run, outside the window, has
/// nothing else to repair, and still puts the definition back from its
/// backup when it abandons the plan. (It used to look the source up only
/// when a repair or an update needed it: the move and its backup stayed.)
fn a_held_agents_abandoned_channel_move_is_undone(kind: Kind) {
    let w = World::new(kind, "15.4.3", "16.0.0");
    w.point_at_channel_site(world::channel_site());
    w.schedule_outside_window();
    w.run(&["run"]).expect(0);
    assert!(held(&w), "{kind:?}: held by the first run");
    w.schedule_in_window();
    run_killed_at(&w, "after-channel-move");
    assert!(
        w.repo_definition().contains("stable/v16"),
        "{kind:?}: moved"
    );
    w.schedule_outside_window();
    let r = w.run(&["run"]);
    r.expect(0).logs_contain("abandon");
    assert_converged(&w, "15.4.3", "after-channel-move");
    let def = w.repo_definition();
    assert!(
        def.contains("stable/v15") && !def.contains("stable/v16"),
        "{kind:?}: {def}\n{}",
        r.stderr()
    );
    let backup = format!(
        "{}.teleport-upgrade.bak",
        w.repo_definition_path().display()
    );
    assert!(
        !std::path::Path::new(&backup).exists(),
        "{kind:?}: backup removed"
    );
}
each_backend!(a_held_agents_abandoned_channel_move_is_undone);

/// `SIGTERM` during the health wait (outside a package operation): the
/// wait stops at once, nothing is undone, exit 8 with the check left in
/// the journal; the next run checks again (healthy now) and keeps 15.4.3.
fn sigterm_during_health_wait_then_verified(kind: Kind) {
    let w = World::new(kind, "15.4.2", "15.4.3");
    w.schedule_in_window();
    with_readyz(&w, Route::status(503, "not ready"), "300");
    let (child, _rx) = spawn_until(&w, "waiting for the agent to be healthy");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    // Exit 8, not 6: the wait stopped (waited out, the 503 would have
    // been judged unhealthy and rolled back).
    assert_eq!(out.status.code(), Some(8), "{kind:?}: exit 8");
    assert!(journal(&w).exists(), "{kind:?}: the check is left to do");
    assert_eq!(
        w.installed().as_deref(),
        Some("15.4.3"),
        "{kind:?}: not undone"
    );
    assert!(held(&w), "{kind:?}: held before stopping");
    assert_eq!(w.state()["last_run"]["result"], "interrupted");
    with_readyz(&w, Route::ok("ok"), "10");
    w.schedule_outside_window();
    w.run(&["run"])
        .expect(0)
        .logs_contain("the agent is healthy");
    assert_converged(&w, "15.4.3", "verified after SIGTERM");
}
each_backend!(sigterm_during_health_wait_then_verified);

/// The health check's own boundaries (readiness answering 200): killed
/// before or after it, the next run (outside the window) checks again or
/// closes the plan.
fn kill_at_the_verify_boundaries_then_converge(kind: Kind) {
    for point in ["before-verify", "after-verify"] {
        let w = World::new(kind, "15.4.2", "15.4.3");
        w.schedule_in_window();
        with_readyz(&w, Route::ok("ok"), "6");
        run_killed_at(&w, point);
        assert!(journal(&w).exists(), "{kind:?} {point}");
        w.schedule_outside_window();
        let r = w.run(&["run"]);
        r.expect(0)
            .logs_contain("an earlier run left a plan unfinished");
        if point == "before-verify" {
            r.logs_contain("the agent is healthy");
        }
        assert_converged(&w, "15.4.3", point);
        eprintln!("FAULT {kind:?} {point:<26} -> finished: 15.4.3 held, verified");
    }
}
each_backend!(kill_at_the_verify_boundaries_then_converge);

/// What a dpkg killed mid-run leaves (an unpacked, unconfigured package
/// and a journal entry) is recovered before the next install.
#[test]
fn an_interrupted_dpkg_is_recovered_before_installing() {
    let w = AptWorld::new("15.4.2", "15.4.3");
    w.schedule_in_window();
    // An unpacked-but-unconfigured package and a journal entry: what a dpkg
    // killed mid-run leaves behind.
    let status = w.root.file("/var/lib/dpkg/status");
    let text = std::fs::read_to_string(&status).unwrap();
    std::fs::write(
        &status,
        text.replace(
            "Status: install ok installed",
            "Status: install ok unpacked",
        ),
    )
    .unwrap();
    std::fs::write(w.root.file("/var/lib/dpkg/updates/0001"), b"").unwrap();
    let r = w.run(&["run"]);
    r.expect(0).logs_contain("dpkg was interrupted");
    assert_eq!(w.installed().as_deref(), Some("15.4.3"));
}

/// The state directory's file system fills up at a step boundary (a real
/// tmpfs, filled by the binary's `fill` fail point): the journal can no
/// longer be written, the run fails (exit 4), and the agent is held at
/// whatever version is installed: the hold never depends on the
/// bookkeeping. Once space is freed, the next run (outside the window)
/// converges: no journal left, held, the installed version kept.
fn full_state_directory_keeps_the_agent_held(kind: Kind) {
    for point in ["before-refresh", "before-install", "before-hold"] {
        let w = World::new(kind, "15.4.2", "15.4.3");
        w.schedule_in_window();
        let dir = w.file("/var/lib/teleport-upgrade");
        std::fs::create_dir_all(&dir).unwrap();
        // Room for the kept package the space check counts here (with its
        // 16 MiB margin) until the fail point fills it.
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mount a small tmpfs (the tests run as root)"
        );
        let filler = dir.join("filler");
        // Once the disk is full, whatever the run frees (its integrity
        // record, say) is taken again at once: it stays full.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let keeper = {
            let (stop, filler, more) = (stop.clone(), filler.clone(), dir.join("filler2"));
            std::thread::spawn(move || {
                use std::io::Write;
                use std::sync::atomic::Ordering;
                while !filler.exists() && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let mut f = std::fs::File::create(&more).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let _ = f.write_all(&[0u8; 512]);
                    std::thread::sleep(Duration::from_millis(1));
                }
                drop(f);
                let _ = std::fs::remove_file(&more);
            })
        };
        let out = cmd(
            &w,
            &["run"],
            Some(&format!("{point}:fill={}", filler.display())),
        )
        .output()
        .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        keeper.join().unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let installed = w.installed();
        let was_held = held(&w);
        std::fs::remove_file(&filler).unwrap();
        assert_eq!(
            out.status.code(),
            Some(4),
            "{kind:?} {point}: exit 4\n{log}"
        );
        assert!(
            log.contains("cannot write the plan journal"),
            "{kind:?} {point}: the journal failed\n{log}"
        );
        assert!(
            was_held,
            "{kind:?} {point}: held at {installed:?} despite the full disk\n{log}"
        );
        w.schedule_outside_window();
        let r = w.run(&["run"]);
        let _ = Command::new("umount").arg(&dir).status();
        r.expect(0);
        assert!(held(&w), "{kind:?} {point}: held");
        assert_eq!(
            w.installed(),
            installed,
            "{kind:?} {point}: nothing more installed"
        );
        eprintln!("FAULT {kind:?} {point:<16} full state directory -> exit 4, {installed:?} held; next run converges");
    }
}
each_backend!(full_state_directory_keeps_the_agent_held);
