//! The failure-rate halt (`fleet-report`, `fleet-halt-rate`,
//! `fleet-halt-min-sample`) through the real binary: hosts in their own apt
//! alternate roots (real dpkg and apt-get), one signed repository, one
//! version server, the airlock-like lock server of `testkit::fleetlock`
//! and the fleet's record in the same real etcd (Debian's `etcd-server`),
//! written by compare-and-swap through etcd's v3 JSON gateway.
//!
//! Health without systemd: each host's `/readyz` is its own loopback
//! stand-in: always ready (the release is good here), ready unless the
//! installed package ships `world::BROKEN_MARKER`: the release breaks a
//! host healthy before it, or does not cure a host unhealthy before it
//! (its agent cannot reach the cluster: an empty schedule, seen twice).

use testkit::aptrepo::AptRepo;
use testkit::aptroot::AptRoot;
use testkit::fleetlock::FleetLock;
use testkit::gpg::Key;
use testkit::http::{Route, Server};
use testkit::world::apt;
use testkit::world::{self, schedule_in_window, BROKEN, BROKEN_MARKER, PKG};

use teleport_upgrade::fleetlock::report::{key, Counts, Store};

/// More slots than hosts: only the rate can halt these rollouts.
const SLOTS: usize = 40;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// The release is good here.
    Good,
    /// The release breaks this host (it was healthy before).
    BrokenByRelease,
    /// Unhealthy before the update, and the update does not cure it.
    Sick,
    /// As `Sick`, and its readyz never answers 200 (the old version is not
    /// healthy either: the rollback's check fails too).
    SickAlways,
}

struct Host {
    root: AptRoot,
    _readyz: Server,
}

struct Fleet {
    _dir: tempfile::TempDir,
    _key: Key,
    _repo: AptRepo,
    _repo_server: Server,
    _vs: Server,
    lock: FleetLock,
    hosts: Vec<Host>,
}

impl Fleet {
    /// Hosts at 15.4.3, the target `BROKEN` (15.4.4: it breaks only the
    /// hosts whose readyz looks at it).
    fn new(kinds: &[Kind], report: Option<&str>) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let (key, repo, repo_server) = apt::signed_repo(dir.path());
        let vs = apt::version_server(dir.path(), BROKEN);
        let lock = FleetLock::start(SLOTS);
        let report = report.map_or_else(|| lock.etcd().url(), str::to_string);
        let hosts = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                let root = AptRoot::new(&dir.path().join(format!("host{i:02}")));
                apt::install_agent(&root, "15.4.3", &key, &repo_server.url(), vs.port());
                let id = format!("{:032x}", 0x4a17_0000_u128 + i as u128 * 7919);
                root.write("/etc/machine-id", format!("{id}\n").as_bytes());
                let rz_dir = dir.path().join(format!("readyz{i:02}"));
                std::fs::create_dir_all(&rz_dir).unwrap();
                let readyz = Server::start(&rz_dir);
                readyz.set_route(
                    "/readyz",
                    match kind {
                        Kind::Good => Route::ok("ok"),
                        Kind::SickAlways => Route::status(503, "not ready"),
                        // Not ready at the new version either way; what
                        // tells them apart is the health before.
                        Kind::Sick | Kind::BrokenByRelease => Route::gate(
                            &root.file(BROKEN_MARKER),
                            Route::status(503, "not ready"),
                            Route::ok("ok"),
                        ),
                    },
                );
                let h = Host {
                    root,
                    _readyz: readyz,
                };
                if matches!(kind, Kind::Sick | Kind::SickAlways) {
                    // The agent cannot reach its cluster (an empty
                    // schedule), seen by the previous run too.
                    h.config("schedule", "");
                    h.config("mark-unhealthy", &(world::now() - 600).to_string());
                } else {
                    h.config("schedule", &schedule_in_window());
                }
                h.config("fleet-lock", &lock.url());
                h.config("fleet-report", &report);
                h.config("fleet-halt-rate", "2");
                h.config("fleet-halt-min-sample", "20");
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
            _vs: vs,
            lock,
            hosts,
        }
    }

    fn record(&self) -> Counts {
        let base = reqwest::Url::parse(&format!("{}/", self.lock.etcd().url())).unwrap();
        Store::new(&base)
            .unwrap()
            .read("default", BROKEN)
            .unwrap()
            .0
    }
}

impl Host {
    fn config(&self, name: &str, value: &str) {
        world::write_config(self.root.path(), name, value);
    }

    fn run(&self) -> (i32, String) {
        let out = world::command(self.root.path(), &["run"]).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn installed(&self) -> Option<String> {
        self.root.installed_version(PKG)
    }
}

/// A 5 % bad release (1 host of 20 broken by it) with fleet-halt-rate 2 %
/// and fleet-halt-min-sample 20: once 20 updates completed (19 ok, 1
/// rolled back), no host takes a slot for it any more (exit 1,
/// rollout-halted), although slots are free.
#[test]
fn a_five_percent_bad_release_halts_at_the_rate() {
    let mut kinds = vec![Kind::Good; 24];
    kinds[7] = Kind::BrokenByRelease;
    let f = Fleet::new(&kinds, None);
    for (i, h) in f.hosts.iter().enumerate() {
        let (code, log) = h.run();
        let want = match i {
            7 => 6,
            _ if i < 20 => 0,
            _ => 1,
        };
        assert_eq!(code, want, "host {i}:\n{log}");
        let st = world::read_state(h.root.path());
        if i >= 20 {
            assert_eq!(st["last_run"]["result"], "rollout-halted", "host {i}: {st}");
            assert!(
                log.contains("rollout halted: 1 of 20 completed updates"),
                "{log}"
            );
            assert_eq!(h.installed().as_deref(), Some("15.4.3"), "host {i}");
            assert_eq!(st["fleet_rollout"]["halted"], true, "{st}");
            assert_eq!(st["rollout_halts_total"], 1, "{st}");
            let s = world::status_json(h.root.path());
            assert_eq!(s["fleet_rollout"]["halted"], true, "{s}");
            assert_eq!(s["fleet_rollout"]["failed"], 1, "{s}");
        }
    }
    assert_eq!(f.record(), Counts { ok: 19, failed: 1 });
    // The rolled-back host keeps its slot; nobody else holds one.
    assert_eq!(f.lock.holders("default").len(), 1);
    // The halt is the decision's: nothing was asked of the lock server.
    let st = world::read_state(f.hosts[23].root.path());
    assert!(st["fleet_lock_requests"]["take"].is_null(), "{st}");
}

/// A good release on a fleet with sick hosts: their updates do not cure
/// them (rolled back, slot given back) and are not counted as failures of
/// the release, so the rollout never halts and every healthy host updates.
#[test]
fn a_good_release_with_uncured_hosts_does_not_halt() {
    let mut kinds = vec![Kind::Sick; 4];
    kinds.extend(vec![Kind::Good; 22]);
    let f = Fleet::new(&kinds, None);
    for (i, h) in f.hosts.iter().enumerate() {
        let (code, log) = h.run();
        let want = if i < 4 { 6 } else { 0 };
        assert_eq!(code, want, "host {i}:\n{log}");
        if i < 4 {
            assert!(log.contains("did not cure the agent"), "{log}");
        } else {
            assert_eq!(h.installed().as_deref(), Some(BROKEN), "host {i}");
        }
    }
    assert_eq!(f.record(), Counts { ok: 22, failed: 0 });
    assert!(f.lock.holders("default").is_empty());
}

/// The record unreachable: no rate halt (the slot count alone bounds the
/// rollout), said in the log and in status; the update goes on.
#[test]
fn an_unreachable_record_falls_back_to_the_slot_count() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let f = Fleet::new(&[Kind::Good], Some(&url));
    let h = &f.hosts[0];
    let (code, log) = h.run();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("cannot read the fleet's record") && log.contains("slot count alone"),
        "{log}"
    );
    assert!(
        log.contains("cannot add this update (ok) to the fleet's record"),
        "{log}"
    );
    assert_eq!(h.installed().as_deref(), Some(BROKEN));
    let st = world::read_state(h.root.path());
    assert_eq!(st["fleet_report_writes"]["error"], 1, "{st}");
    assert!(st["fleet_rollout"]["error"].is_string(), "{st}");
}

/// Hosts adding to the record at the same moment: compare-and-swap on the
/// key's version loses no update (a plain put would), against real etcd.
#[test]
fn concurrent_adds_lose_nothing() {
    let etcd = testkit::etcd::Etcd::start();
    let base = reqwest::Url::parse(&format!("{}/", etcd.url())).unwrap();
    let added = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (base, added) = (&base, &added);
            s.spawn(move || {
                let store = Store::new(base).unwrap();
                for n in 0..10 {
                    if store.add("g", "1.2.3", (t + n) % 5 != 0).is_ok() {
                        added.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let raw = etcd.range(key("g", "1.2.3").as_bytes()).unwrap().unwrap();
    let c: Counts = serde_json::from_slice(&raw.value).unwrap();
    let added = added.into_inner();
    assert!(
        added >= 70,
        "most adds succeed within the bounded retries: {added}"
    );
    assert_eq!(c.total(), added, "{c:?}");
}

/// A host unhealthy before the update and after its rollback alike (its
/// readyz never answers): the rollback's check fails (exit 7), and the
/// slot is given back all the same, the host is sick whatever version it
/// runs. (It kept the slot before: a chronically sick host held one slot
/// for good, and enough of them halted a good release.)
#[test]
fn a_host_sick_before_and_after_gives_its_slot_back() {
    let f = Fleet::new(&[Kind::SickAlways], None);
    let h = &f.hosts[0];
    let (code, log) = h.run();
    assert_eq!(code, 7, "{log}");
    assert!(f.lock.holders("default").is_empty(), "given back: {log}");
    assert_eq!(
        f.record(),
        Counts::default(),
        "not a failure of the release"
    );
    let st = world::read_state(h.root.path());
    assert!(st["fleet_lock"].is_null(), "{st}");
}
