//! FleetLock rollout control through the real binary: 20 updater
//! processes, each in its own apt alternate root (real dpkg and apt-get),
//! sharing one signed repository and one version server, run together
//! inside a window against a lock server that answers as airlock does and
//! keeps airlock's semaphore in a real etcd (`testkit::fleetlock`), with 3
//! slots. A refused host runs again (as its timer would) until it is done.
//!
//! Health without systemd: each host's `/readyz` is its own loopback
//! stand-in answering 503 while the installed package ships
//! `world::BROKEN_MARKER` (only the BROKEN version does).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use testkit::aptrepo::AptRepo;
use testkit::aptroot::AptRoot;
use testkit::fleetlock::{FleetLock, Mode, Op};
use testkit::gpg::Key;
use testkit::http::{Route, Server};
use testkit::world::apt;
use testkit::world::{self, schedule_in_window, BROKEN, BROKEN_MARKER, CHANNEL, PKG};

const HOSTS: usize = 20;
const SLOTS: usize = 3;

struct Host {
    root: AptRoot,
    _readyz: Server,
    machine_id: String,
}

struct Fleet {
    _dir: tempfile::TempDir,
    _key: Key,
    _repo: AptRepo,
    _repo_server: Server,
    vs: Server,
    lock: FleetLock,
    hosts: Vec<Host>,
}

impl Fleet {
    fn new(installed: &str, target: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let (key, repo, repo_server) = apt::signed_repo(dir.path());
        let vs = apt::version_server(dir.path(), target);
        let lock = FleetLock::start(SLOTS);
        let schedule = schedule_in_window();
        let hosts = (0..HOSTS)
            .map(|i| {
                let root = AptRoot::new(&dir.path().join(format!("host{i:02}")));
                apt::install_agent(&root, installed, &key, &repo_server.url(), vs.port());
                let machine_id = format!("{:032x}", 0x5eed_0000_u128 + i as u128 * 7919);
                root.write("/etc/machine-id", format!("{machine_id}\n").as_bytes());
                let rz_dir = dir.path().join(format!("readyz{i:02}"));
                std::fs::create_dir_all(&rz_dir).unwrap();
                let readyz = Server::start(&rz_dir);
                readyz.set_route(
                    "/readyz",
                    Route::gate(
                        &root.file(BROKEN_MARKER),
                        Route::status(503, "not ready"),
                        Route::ok("ok"),
                    ),
                );
                let h = Host {
                    root,
                    _readyz: readyz,
                    machine_id,
                };
                h.config("schedule", &schedule);
                h.config("fleet-lock", &lock.url());
                h.config("diag-addr", &format!("127.0.0.1:{}", h._readyz.port()));
                h.config("health-timeout", "3");
                h
            })
            .collect();
        Fleet {
            _dir: dir,
            _key: key,
            _repo: repo,
            _repo_server: repo_server,
            vs,
            lock,
            hosts,
        }
    }

    fn set_target(&self, t: &str) {
        self.vs
            .set_route(&format!("{CHANNEL}/version"), Route::ok(t));
    }
}

impl Host {
    fn config(&self, name: &str, value: &str) {
        world::write_config(self.root.path(), name, value);
    }

    fn cmd(&self, args: &[&str]) -> Command {
        world::command(self.root.path(), args)
    }

    fn run(&self) -> (i32, String) {
        let out = self.cmd(&["run"]).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn installed(&self) -> Option<String> {
        self.root.installed_version(PKG)
    }

    fn state(&self) -> serde_json::Value {
        world::read_state(self.root.path())
    }

    fn status_json(&self) -> serde_json::Value {
        world::status_json(self.root.path())
    }

    /// Whether apt ever installed `version` in this root: its history
    /// log (`None`: apt never installed anything here).
    fn ever_installed(&self, version: &str) -> Option<bool> {
        let text = std::fs::read_to_string(self.root.file("/var/log/apt/history.log")).ok()?;
        Some(
            text.lines()
                .any(|l| l.contains(PKG) && l.contains(&format!(" {version})"))),
        )
    }
}

/// Run every host as its timer would: a run refused a slot (exit 1) runs
/// again shortly, while `keep_going` says so, at most `bound` times. All
/// hosts start together. Returns each host's exit codes.
fn run_fleet(
    f: &Fleet,
    bound: usize,
    keep_going: impl Fn(&[Vec<i32>]) -> bool + Sync,
) -> Vec<Vec<i32>> {
    let codes: Vec<std::sync::Mutex<Vec<i32>>> =
        (0..f.hosts.len()).map(|_| Default::default()).collect();
    let logs: Vec<std::sync::Mutex<String>> =
        (0..f.hosts.len()).map(|_| Default::default()).collect();
    let start = Arc::new(std::sync::Barrier::new(f.hosts.len()));
    let snapshot = |codes: &[std::sync::Mutex<Vec<i32>>]| -> Vec<Vec<i32>> {
        codes.iter().map(|c| c.lock().unwrap().clone()).collect()
    };
    std::thread::scope(|s| {
        for (i, h) in f.hosts.iter().enumerate() {
            let (codes, logs, start, keep_going, snapshot) =
                (&codes, &logs, start.clone(), &keep_going, &snapshot);
            s.spawn(move || {
                start.wait();
                for _ in 0..bound {
                    let (code, log) = h.run();
                    codes[i].lock().unwrap().push(code);
                    *logs[i].lock().unwrap() = log;
                    if code != 1 || !keep_going(&snapshot(codes)) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
        }
    });
    let out = snapshot(&codes);
    for (i, c) in out.iter().enumerate() {
        let last = *c.last().unwrap();
        if ![0, 1, 6].contains(&last) {
            panic!("host {i} ended with {last}:\n{}", logs[i].lock().unwrap());
        }
    }
    out
}

/// No instant with more than `slots` holders, every take matched by one
/// release at most, from the stand-in's record.
fn check_record(lock: &FleetLock, slots: usize) {
    let mut held = std::collections::BTreeSet::new();
    for e in lock.events() {
        match e.op {
            Op::Take => assert!(held.insert(e.id.clone()), "{} took twice", e.id),
            Op::Release => assert!(held.remove(&e.id), "{} released unheld", e.id),
        }
        assert_eq!(held.len(), e.holders);
        assert!(
            held.len() <= slots,
            "{} hosts held a slot at once (at most {slots})",
            held.len()
        );
    }
}

#[test]
fn twenty_hosts_three_slots_all_converge() {
    let f = Fleet::new("15.4.2", "15.4.3");
    let codes = run_fleet(&f, 400, |_| true);
    for (i, h) in f.hosts.iter().enumerate() {
        assert_eq!(
            h.installed().as_deref(),
            Some("15.4.3"),
            "host {i}: {:?}",
            codes[i]
        );
        assert_eq!(*codes[i].last().unwrap(), 0, "host {i}");
        assert!(h.root.is_held(PKG), "host {i} held");
        assert!(h.status_json()["fleet_lock"].is_null(), "host {i}");
    }
    check_record(&f.lock, SLOTS);
    let ev = f.lock.events();
    let takers: std::collections::BTreeSet<_> = ev
        .iter()
        .filter(|e| e.op == Op::Take)
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(takers.len(), HOSTS, "every host took a slot");
    assert_eq!(
        ev.iter().filter(|e| e.op == Op::Take).count(),
        HOSTS,
        "once each"
    );
    assert!(
        f.lock.holders("default").is_empty(),
        "every slot given back"
    );
    assert_eq!(
        f.lock.max_holders("default"),
        SLOTS,
        "the slots were contended"
    );
    assert!(f.lock.refused() > 0, "some runs were refused a slot");
    let refused_runs: usize = codes
        .iter()
        .map(|c| c.iter().filter(|x| **x == 1).count())
        .sum();
    let reqs = f.lock.requests();
    eprintln!(
        "runs: {} ({} refused a slot); lock requests {}, of which {} write conflicts ({:.1} %), {} full",
        codes.iter().map(Vec::len).sum::<usize>(),
        refused_runs,
        reqs.len(),
        f.lock.conflicts(),
        100.0 * f.lock.conflicts() as f64 / reqs.len().max(1) as f64,
        f.lock.refused(),
    );
    // The ids are app-specific, never the raw machine ids; and every
    // request carried the protocol header.
    for h in &f.hosts {
        assert!(!takers.contains(&h.machine_id));
    }
    assert!(f.lock.requests().iter().all(|r| r.protocol_header));
    assert!(f
        .lock
        .requests()
        .iter()
        .all(|r| r.body.contains("\"group\":\"default\"")));
}

#[test]
fn a_broken_release_reaches_at_most_three_hosts() {
    let f = Fleet::new("15.4.3", BROKEN);
    let settled = AtomicUsize::new(0);
    // Refused hosts keep trying until the 3 slot holders have rolled back,
    // then a few times more: the rollout stays halted.
    let codes = run_fleet(&f, 400, |all| {
        let done = all.iter().filter(|c| c.last() == Some(&6)).count();
        if done >= SLOTS {
            settled.fetch_add(1, Ordering::SeqCst) < 3 * HOSTS
        } else {
            true
        }
    });
    let rolled: Vec<usize> = (0..HOSTS).filter(|i| codes[*i].contains(&6)).collect();
    assert_eq!(rolled.len(), SLOTS, "{codes:?}");
    let mut reached = 0;
    for (i, h) in f.hosts.iter().enumerate() {
        assert_eq!(
            h.installed().as_deref(),
            Some("15.4.3"),
            "host {i} on the old version"
        );
        let st = h.state();
        if rolled.contains(&i) {
            reached += 1;
            assert_eq!(st["failed_target"]["version"], BROKEN, "host {i}");
            assert_eq!(
                h.ever_installed(BROKEN),
                Some(true),
                "host {i}: the log shows the install"
            );
            let s = h.status_json();
            assert_eq!(
                s["fleet_lock"]["group"], "default",
                "host {i} keeps its slot: {s}"
            );
        } else {
            assert_eq!(st["rollbacks_total"], 0, "host {i} never installed it");
            assert_ne!(
                h.ever_installed(BROKEN),
                Some(true),
                "host {i} never installed {BROKEN}"
            );
            assert_eq!(st["last_run"]["result"], "no-slot", "host {i} waits");
            assert!(
                st["last_run"]["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains("FleetLock slot"),
                "host {i}: {}",
                st["last_run"]
            );
        }
    }
    assert!(reached <= SLOTS);
    check_record(&f.lock, SLOTS);
    assert_eq!(
        f.lock.holders("default").len(),
        SLOTS,
        "the rolled-back hosts keep their slots"
    );
    let holders = f.lock.holders("default");
    for i in &rolled {
        assert!(holders.contains(
            &f.hosts[*i].status_json()["fleet_lock"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        ));
    }

    // A rolled-back host does not retry the broken version (and keeps the
    // slot); a waiting host is still refused.
    let (code, log) = f.hosts[rolled[0]].run();
    assert_eq!(code, 0, "{log}");
    assert_eq!(f.lock.holders("default").len(), SLOTS);
    let waiting = (0..HOSTS).find(|i| !rolled.contains(i)).unwrap();
    let (code, log) = f.hosts[waiting].run();
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("every slot of the group is taken"), "{log}");
    assert!(
        log.contains("all 3 semaphore slots currently locked"),
        "airlock's own words: {log}"
    );

    // Recovery: the operator re-targets the fleet to the version it runs;
    // the hosts that kept a slot give it back on their next run.
    f.set_target("15.4.3");
    for i in &rolled {
        let (code, log) = f.hosts[*i].run();
        assert_eq!(code, 0, "{log}");
        assert!(log.contains("gave back the FleetLock slot"), "{log}");
        assert!(f.hosts[*i].status_json()["fleet_lock"].is_null());
    }
    assert!(f.lock.holders("default").is_empty());
    check_record(&f.lock, SLOTS);
}

/// An unreachable or failing lock server: no change, exit 1 with the
/// reason, and the next run (server back) updates and gives the slot back.
#[test]
fn no_lock_server_no_change() {
    let f = Fleet::new("15.4.2", "15.4.3");
    let h = &f.hosts[0];
    for (mode, why) in [
        (Mode::Unreachable, "unreachable"),
        (Mode::Error500, "cannot reach its store"),
    ] {
        f.lock.set_mode(mode);
        let (code, log) = h.run();
        assert_eq!(code, 1, "{mode:?}: {log}");
        assert!(log.contains(why), "{mode:?}: {log}");
        assert_eq!(
            h.installed().as_deref(),
            Some("15.4.2"),
            "{mode:?}: nothing changed"
        );
        assert!(
            h.status_json()["unfinished_plan"].is_null(),
            "{mode:?}: nothing blocks the next runs"
        );
    }
    f.lock.set_mode(Mode::Serve);
    let (code, log) = h.run();
    assert_eq!(code, 0, "{log}");
    assert_eq!(h.installed().as_deref(), Some("15.4.3"));
    assert!(f.lock.holders("default").is_empty(), "{log}");
    // A fleet-lock setting that would speak plain http to another host is
    // a configuration error (exit 2, naming the file), whatever is due.
    let h = &f.hosts[2];
    h.config("fleet-lock", "http://lock.example.com:3333");
    let (code, log) = h.run();
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("fleet-lock") && log.contains("https"), "{log}");
    assert_eq!(h.installed().as_deref(), Some("15.4.2"));
    // A critical update ignores the lock (even an unreachable one).
    let h = &f.hosts[1];
    f.vs.set_route(&format!("{CHANNEL}/critical"), Route::ok("yes"));
    f.lock.set_mode(Mode::Unreachable);
    let (code, log) = h.run();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("critical: not taking a FleetLock slot"),
        "{log}"
    );
    assert_eq!(h.installed().as_deref(), Some("15.4.3"));
}

/// A run killed between taking and giving back (fail points, debug
/// builds): the next run finishes the plan (under the slot it holds) and
/// gives the slot back.
#[test]
fn a_killed_run_never_leaks_a_slot() {
    let f = Fleet::new("15.4.2", "15.4.3");
    for (i, point) in ["after-take-slot", "after-install", "after-verify"]
        .iter()
        .enumerate()
    {
        let h = &f.hosts[i];
        let out = h
            .cmd(&["run"])
            .env("TELEPORT_UPGRADE_FAILPOINT", point)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), None, "{point}: killed\n{log}");
        assert_eq!(
            f.lock.holders("default").len(),
            1,
            "{point}: held across the kill\n{log}"
        );
        let plan = h.status_json()["unfinished_plan"].to_string();
        assert!(
            plan.contains(&format!(
                "holds a FleetLock slot of group default (as {})",
                f.lock.holders("default")[0]
            )),
            "{point}: status names the slot the plan holds: {plan}"
        );
        let (code, log) = h.run();
        assert_eq!(code, 0, "{point}: {log}");
        assert!(
            log.contains("finished the plan an earlier run left"),
            "{point}: {log}"
        );
        assert!(
            log.contains("gave the FleetLock slot back"),
            "{point}: {log}"
        );
        assert!(f.lock.holders("default").is_empty(), "{point}");
        assert_eq!(h.installed().as_deref(), Some("15.4.3"), "{point}");
    }
    check_record(&f.lock, SLOTS);

    // Killed before the health check of a broken version: the next run
    // checks, rolls back, and keeps the slot.
    let h = &f.hosts[3];
    f.set_target(BROKEN);
    let out = h
        .cmd(&["run"])
        .env("TELEPORT_UPGRADE_FAILPOINT", "before-verify")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), None, "killed\n{log}");
    assert_eq!(h.installed().as_deref(), Some(BROKEN), "{log}");
    let (code, log) = h.run();
    assert_eq!(code, 6, "{log}");
    assert_eq!(h.installed().as_deref(), Some("15.4.2"), "{log}");
    let s = h.status_json();
    assert_eq!(s["fleet_lock"]["group"], "default", "{s}");
    assert_eq!(
        f.lock.holders("default"),
        vec![s["fleet_lock"]["id"].as_str().unwrap().to_string()]
    );
    check_record(&f.lock, SLOTS);
}

/// The lock server cannot be told that a healthy host gives its slot
/// back: the update stands (exit 0), the slot is recorded as kept (status
/// says so), and the next run, healthy at the target, gives it back. A
/// run never blocks on the lock server once its update is done.
#[test]
fn a_release_the_server_missed_is_given_back_later() {
    let f = Fleet::new("15.4.2", "15.4.3");
    let h = &f.hosts[0];
    let out = h
        .cmd(&["run"])
        .env("TELEPORT_UPGRADE_FAILPOINT", "before-release-slot")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "killed");
    assert_eq!(f.lock.holders("default").len(), 1);
    f.lock.set_mode(Mode::Unreachable);
    let (code, log) = h.run();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("cannot give the FleetLock slot back"), "{log}");
    assert_eq!(h.installed().as_deref(), Some("15.4.3"));
    let s = h.status_json();
    assert!(
        s["fleet_lock"]["why"].as_str().unwrap().contains("failed"),
        "{s}"
    );
    assert!(
        s["unfinished_plan"].is_null(),
        "no journal left to block: {s}"
    );
    assert_eq!(
        f.lock.holders("default").len(),
        1,
        "still held on the server"
    );
    f.lock.set_mode(Mode::Serve);
    let (code, log) = h.run();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("gave back the FleetLock slot"), "{log}");
    assert!(f.lock.holders("default").is_empty());
    assert!(h.status_json()["fleet_lock"].is_null());
}

/// `dry-run` shows the slot steps of the plan, and takes no slot.
#[test]
fn dry_run_shows_the_slot_steps() {
    let f = Fleet::new("15.4.2", "15.4.3");
    let out = f.hosts[0].cmd(&["dry-run"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("take a FleetLock slot of group default"),
        "{text}"
    );
    assert!(
        text.contains("give the FleetLock slot of group default back"),
        "{text}"
    );
    assert!(
        text.find("take a FleetLock").unwrap() < text.find("install 15.4.3").unwrap(),
        "{text}"
    );
    assert!(
        f.lock.requests().is_empty(),
        "a dry run asks nothing of the lock server"
    );
}

/// A take the lock server answers with "no" (a full semaphore, airlock's
/// 500 `failed_lock`; its etcd down, 500 `failed_sem_init`) granted
/// nothing: the host does not follow it with a release (it used to,
/// doubling the lock server's writes, and recorded a slot it never had
/// when that release failed). Exit 1, `no-slot`, nothing changed. A
/// transient answer (etcd down) is asked again within the run, a bounded
/// number of times; a full group is not.
#[test]
fn a_refused_take_is_not_followed_by_a_release() {
    let f = Fleet::new("15.4.2", "15.4.3");
    let h = &f.hosts[0];
    for (how, set, takes) in [
        (
            "full",
            Box::new(|l: &FleetLock| l.set_slots(0)) as Box<dyn Fn(&FleetLock)>,
            1,
        ),
        (
            "store down",
            Box::new(|l: &FleetLock| l.set_mode(Mode::Error500)),
            teleport_upgrade::fleetlock::retry::TAKE_ATTEMPTS as usize,
        ),
    ] {
        set(&f.lock);
        let before = f.lock.requests().len();
        let (code, log) = h.run();
        assert_eq!(code, 1, "{how}: {log}");
        let reqs = f.lock.requests();
        let paths: Vec<&str> = reqs[before..].iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["/v1/pre-reboot"; takes],
            "{how}: only the take\n{log}"
        );
        assert_eq!(h.state()["last_run"]["result"], "no-slot", "{how}");
        assert!(
            h.status_json()["fleet_lock"].is_null(),
            "{how}: no slot recorded as kept"
        );
        assert_eq!(h.installed().as_deref(), Some("15.4.2"), "{how}");
    }
}

/// airlock's answers are told apart and said as what they mean: a group
/// the server does not know (400 `unknown_group`) is a configuration to
/// fix, not a full group; asked once, never followed by a release.
#[test]
fn airlock_answers_are_told_apart() {
    let f = Fleet::new("15.4.2", "15.4.3");
    let h = &f.hosts[0];
    h.config("fleet-lock-group", "canary");
    let (code, log) = h.run();
    assert_eq!(code, 1, "{log}");
    assert!(log.contains("does not know this group"), "{log}");
    assert!(log.contains("unknown group \"canary\""), "{log}");
    assert!(!log.contains("every slot of the group is taken"), "{log}");
    let reqs = f.lock.requests();
    assert_eq!(reqs.len(), 1, "asked once: {reqs:?}");
    assert_eq!(
        (reqs[0].status, reqs[0].kind.as_str()),
        (400, "unknown_group")
    );
    assert_eq!(h.installed().as_deref(), Some("15.4.2"));
    // The body is the protocol's, nothing more.
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reqs[0].body).unwrap()["client_params"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["group", "id"]
    );
}

/// A release that meets another host's write (airlock's 500 `failed_lock`
/// "conflict on semaphore detected", real etcd compare-and-swap conflicts)
/// is asked again within the run: the slot is given back, not recorded as
/// kept until the next run.
#[test]
fn a_failed_release_is_retried_within_the_run() {
    let f = Fleet::new("15.4.2", "15.4.3");
    let h = &f.hosts[0];
    f.lock.inject_conflicts(Op::Release, 2);
    let (code, log) = h.run();
    assert_eq!(code, 0, "{log}");
    assert_eq!(h.installed().as_deref(), Some("15.4.3"));
    let releases: Vec<u16> = f
        .lock
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/steady-state")
        .map(|r| r.status)
        .collect();
    assert_eq!(releases, vec![500, 500, 200], "{log}");
    assert_eq!(f.lock.conflicts(), 2);
    // Counted by operation and result (the state, and the metrics).
    assert_eq!(
        h.state()["fleet_lock_requests"],
        serde_json::json!({"release": {"conflict": 2, "ok": 1}, "take": {"ok": 1}})
    );
    assert!(f.lock.holders("default").is_empty(), "{log}");
    assert!(h.status_json()["fleet_lock"].is_null(), "not kept: {log}");
    check_record(&f.lock, SLOTS);
}

/// The protocol's start-up release: a host whose record of its slot is
/// lost (re-imaged, state file gone) while the lock server still holds
/// one under its id frees it on its next run, even with nothing to
/// update; once the server answered, later runs do not ask again.
#[test]
fn a_host_with_no_record_releases_at_start() {
    let f = Fleet::new("15.4.3", "15.4.3");
    let h = &f.hosts[0];
    f.lock.init();
    // A slot held under the host's id, and no record of it here.
    let derived = status_id(h);
    f.lock.hold("default", &derived);
    assert_eq!(f.lock.holders("default"), vec![derived.clone()]);
    let out = h.cmd(&["dry-run"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("start-up release"), "dry-run says it: {text}");
    assert!(f.lock.requests().is_empty(), "and asks nothing");
    let (code, log) = h.run();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("start-up release"), "{log}");
    assert!(f.lock.holders("default").is_empty(), "freed: {log}");
    let n = f.lock.requests().len();
    let (code, log) = h.run();
    assert_eq!(code, 0, "{log}");
    assert_eq!(f.lock.requests().len(), n, "asked once only: {log}");
    // A changed id has no record: released once under the new id.
    h.config("fleet-lock-id", "web-17.example.com");
    let (code, log) = h.run();
    assert_eq!(code, 0, "{log}");
    let last = f.lock.requests().last().cloned().unwrap();
    assert_eq!(last.path, "/v1/steady-state");
    assert!(
        last.body.contains("\"id\":\"web-17.example.com\""),
        "{}",
        last.body
    );
}

/// The id the host sends, derived from its machine id as the binary
/// derives it (`fleetlock::id`).
fn status_id(h: &Host) -> String {
    let m = teleport_upgrade::fleetlock::id::parse_machine_id(&h.machine_id).unwrap();
    teleport_upgrade::fleetlock::id::app_specific(&m)
}

/// `fleet-lock-id` replaces the derived id: hosts cloned from one image
/// (one machine id) hold a slot each, not one between them.
#[test]
fn fleet_lock_id_tells_clones_apart() {
    let f = Fleet::new("15.4.2", "15.4.3");
    f.lock.set_slots(2);
    let same = f.hosts[0].machine_id.clone();
    for (i, h) in f.hosts[..2].iter().enumerate() {
        h.root
            .write("/etc/machine-id", format!("{same}\n").as_bytes());
        h.config("fleet-lock-id", &format!("clone-{i}.example.com"));
        h.config("health-timeout", "0");
    }
    // Killed while holding their slots: both are held at once.
    for h in &f.hosts[..2] {
        let out = h
            .cmd(&["run"])
            .env("TELEPORT_UPGRADE_FAILPOINT", "after-take-slot")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), None);
    }
    assert_eq!(
        f.lock.holders("default"),
        vec!["clone-0.example.com", "clone-1.example.com"]
    );
    // An invalid id is a configuration error naming the file.
    let h = &f.hosts[2];
    h.config("fleet-lock-id", "a b");
    let (code, log) = h.run();
    assert_eq!(code, 2, "{log}");
    assert!(log.contains("fleet-lock-id"), "{log}");
}

/// Halt on the release, not on the host: an update made because the agent
/// was unhealthy (two unhealthy runs) that does not cure it is rolled back
/// and gives its slot back (counted as such: `uncured_total`); a host that
/// was healthy before keeps its slot on a rollback (the tests above).
#[test]
fn an_update_that_does_not_cure_an_unhealthy_host_gives_its_slot_back() {
    let f = Fleet::new("15.4.3", BROKEN);
    let h = &f.hosts[0];
    h.config("schedule", "");
    h.config("mark-unhealthy", &(world::now() - 600).to_string());
    let (code, log) = h.run();
    assert_eq!(code, 6, "{log}");
    assert_eq!(h.installed().as_deref(), Some("15.4.3"));
    assert!(f.lock.holders("default").is_empty(), "given back: {log}");
    assert!(log.contains("did not cure the agent"), "{log}");
    let s = h.status_json();
    assert!(s["fleet_lock"].is_null(), "{s}");
    assert_eq!(
        (s["rollbacks_total"].clone(), s["uncured_total"].clone()),
        (1.into(), 1.into())
    );
    check_record(&f.lock, SLOTS);
}
