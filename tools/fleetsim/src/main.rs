//! fleetsim: a discrete-event model of N hosts running `teleport-upgrade`
//! from its timer, each run deciding through the REAL
//! [`teleport_upgrade::decision::decide`]. No threads, no sleeps: one
//! event queue ordered by (time, sequence), one seeded generator, so a run
//! is reproducible from its seed.
//!
//! Modelled:
//! - the timer (`systemd/teleport-upgrade.timer`): a run about every
//!   30 minutes after the last start (`OnUnitActiveSec=30min`) plus
//!   `RandomizedDelaySec=3min` plus up to `AccuracySec=1min`; timers start
//!   at a uniformly random phase; no second run while one is going;
//! - per-host clock offsets (most within ±2 min, 1% within ±15 min): the
//!   host decides with its own clock, the windows are the cluster's;
//! - a daily maintenance window (the same for the whole fleet: the worst
//!   case for load); the schedule the agent writes holds the week's
//!   windows;
//! - unhealthy agents: 1% cannot reach their cluster (empty schedule),
//!   0.5% go down at a random time of the week (the service fails);
//! - a release published 12 h into the week, optionally critical, optionally
//!   broken (it never becomes healthy: rolled back after `health-timeout`);
//! - the FleetLock semaphore (optional): a non-critical update takes a slot
//!   before its download, gives it back once healthy, a rolled-back host
//!   keeps it; a refused run changes nothing and waits for its next timer
//!   run.
//!
//! An update: two version-server requests per run; download 20-90 s;
//! install 5-15 s; restart and health check 10-40 s (a broken version:
//! the health timeout, 300 s, then a rollback: install, restart, check,
//! 30-70 s).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use backends::PkgVersion;
use teleport_upgrade::decision::{decide, Decision, Mode, Observed, PackageState, UpdateReason};
use teleport_upgrade::schedule::{Schedule, Window};
use teleport_upgrade::target::{Target, TargetVersion};

const OLD: &str = "15.4.2";
const NEW: &str = "15.4.3";
const DAY: i64 = 86_400;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[lo, hi]`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
}

#[derive(Debug, Clone)]
struct Params {
    hosts: usize,
    days: i64,
    seed: u64,
    /// FleetLock slots (one group), `None`: no FleetLock.
    slots: Option<usize>,
    broken: bool,
    critical: bool,
    /// The daily window: start hour (UTC) and length in minutes.
    window_hour: i64,
    window_min: i64,
    /// When the release is published (seconds into the week).
    release_at: i64,
    health_timeout: i64,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Timer,
    Downloaded,
    Checked,
    RolledBack,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    Window,
    Critical,
    Unhealthy,
}

#[derive(Clone)]
struct Host {
    offset: i64,
    new_installed: bool,
    marker: bool,
    failed: bool,
    slot: bool,
    busy: bool,
    empty_schedule: bool,
    down_at: Option<i64>,
    reached: bool,
    why: Why,
}

#[derive(Default, Debug)]
struct Report {
    runs: u64,
    vs_mean: f64,
    vs_peak: u32,
    downloads_peak: i64,
    restarts_peak: i64,
    restarts: u64,
    /// Restarts outside every window by the host's own clock, by why the
    /// update ran: [window run that outlived its window, critical,
    /// unhealthy, rollback].
    outside_host: [u64; 4],
    /// Restarts outside every window by the cluster's clock (skew adds to
    /// the above).
    outside_true: u64,
    /// Seconds from the first window opening after the release until 50%,
    /// 90%, 99%, 100% of the hosts run the release.
    converge: [Option<i64>; 4],
    at_target: usize,
    reached_broken: usize,
    refused: u64,
    slots_peak: usize,
    slots_kept: usize,
    wall_ms: u128,
}

/// The share of the fleet at the release for each `Report::converge` entry.
const THRESHOLDS: [f64; 4] = [0.5, 0.9, 0.99, 1.0];

/// What every host's decision shares: the cluster's schedule, the two
/// versions and their targets.
struct Versions {
    schedule: Schedule,
    old: PkgVersion,
    new: PkgVersion,
    target_old: Target,
    target_new: Target,
    new_word: String,
}

/// The event queue, ordered by (time, sequence).
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<(i64, u64, u32, Ev)>>,
    seq: u64,
}

impl Queue {
    fn push(&mut self, t: i64, h: usize, e: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, h as u32, e)));
    }
    fn pop(&mut self) -> Option<(i64, usize, Ev)> {
        self.heap
            .pop()
            .map(|Reverse((t, _, h, e))| (t, h as usize, e))
    }
}

/// One run's state, between events.
struct Sim<'a> {
    p: &'a Params,
    rng: Rng,
    windows: Vec<Window>,
    v: Versions,
    hosts: Vec<Host>,
    q: Queue,
    r: Report,
    /// Version-server requests, by second.
    vs: Vec<u32>,
    downloads: i64,
    restarting: i64,
    slots_used: usize,
    at_target: usize,
    first_window_after_release: i64,
}

fn simulate(p: &Params) -> Report {
    let t0 = Instant::now();
    let mut rng = Rng(p.seed);
    let end = p.days * DAY;
    let windows: Vec<Window> = (0..=p.days)
        .map(|d| {
            let start = d * DAY + p.window_hour * 3600;
            Window {
                start,
                stop: start + p.window_min * 60,
            }
        })
        .collect();
    let target_new = Target::Version(TargetVersion::parse(NEW).unwrap());
    let v = Versions {
        schedule: Schedule::Windows(windows.clone()),
        old: PkgVersion::parse(OLD).unwrap(),
        new: PkgVersion::parse(NEW).unwrap(),
        target_old: Target::Version(TargetVersion::parse(OLD).unwrap()),
        new_word: target_new.to_string(),
        target_new,
    };
    let hosts = new_hosts(p, &mut rng, end);
    let mut q = Queue::default();
    for h in 0..p.hosts {
        let t = rng.range(0, 1800);
        q.push(t, h, Ev::Timer);
    }
    // A critical release does not wait for a window: measured from the
    // release itself.
    let first_window_after_release = if p.critical {
        p.release_at
    } else {
        windows
            .iter()
            .map(|w| w.start)
            .find(|s| *s >= p.release_at)
            .unwrap_or(p.release_at)
    };
    let mut sim = Sim {
        p,
        rng,
        windows,
        v,
        hosts,
        q,
        r: Report::default(),
        vs: vec![0u32; end as usize + 1],
        downloads: 0,
        restarting: 0,
        slots_used: 0,
        at_target: 0,
        first_window_after_release,
    };
    while let Some((t, hi, ev)) = sim.q.pop() {
        if t > end {
            break;
        }
        match ev {
            Ev::Timer => sim.timer(t, hi),
            Ev::Downloaded => sim.downloaded(t, hi),
            Ev::Checked => sim.checked(t, hi),
            Ev::RolledBack => sim.rolled_back(hi),
        }
    }
    let Sim {
        mut r,
        hosts,
        vs,
        restarting,
        at_target,
        ..
    } = sim;
    r.restarts_peak = r.restarts_peak.max(restarting);
    r.at_target = at_target;
    r.reached_broken = hosts.iter().filter(|h| h.reached).count();
    r.slots_kept = hosts.iter().filter(|h| h.slot).count();
    let secs = end.max(1) as f64;
    r.vs_mean = vs.iter().map(|x| *x as u64).sum::<u64>() as f64 / secs;
    r.vs_peak = vs.iter().copied().max().unwrap_or(0);
    r.wall_ms = t0.elapsed().as_millis();
    r
}

/// The fleet: clock offsets, empty schedules, agents that go down.
fn new_hosts(p: &Params, rng: &mut Rng, end: i64) -> Vec<Host> {
    (0..p.hosts)
        .map(|_| {
            let offset = if rng.unit() < 0.01 {
                rng.range(-900, 900)
            } else {
                rng.range(-120, 120)
            };
            let empty_schedule = rng.unit() < 0.01;
            let down_at = (rng.unit() < 0.005).then(|| rng.range(0, end));
            Host {
                offset,
                new_installed: false,
                marker: false,
                failed: false,
                slot: false,
                busy: false,
                empty_schedule,
                down_at,
                reached: false,
                why: Why::Window,
            }
        })
        .collect()
}

/// What a host's run observes at `t` (the cluster's clock).
fn observed(p: &Params, v: &Versions, host: &Host, t: i64) -> Observed {
    let released = t >= p.release_at;
    let now = t + host.offset;
    Observed {
        mode: Mode::Run,
        now,
        target: if released {
            v.target_new.clone()
        } else {
            v.target_old.clone()
        },
        critical: released && p.critical,
        schedule: if host.empty_schedule {
            Schedule::Empty
        } else {
            v.schedule.clone()
        },
        service_unhealthy: host
            .down_at
            .filter(|d| *d <= t)
            .map(|_| "teleport.service is failed".to_string()),
        marker_present: host.marker,
        installed: if host.new_installed {
            v.new.clone()
        } else {
            v.old.clone()
        },
        failed_target: host.failed.then(|| v.new_word.clone()),
        v2: None,
        package: PackageState {
            held: Some(true),
            ..Default::default()
        },
        window_margin: teleport_upgrade::config::DEFAULT_WINDOW_MARGIN.as_secs() as i64,
        installer_nop: false,
        agent: teleport_upgrade::health::AgentBefore::Running,
        restart_mode: teleport_upgrade::config::RestartMode::Reload,
        fleet_lock: false,
        slot_record: teleport_upgrade::fleetlock::SlotRecord::Clear,
        jitter: None,
        guard: None,
        unfinished: None,
        // The simulated fleet only moves up: no lower target.
        lower_seen: None,
        confirm_interval: 300,
        fleet_report: None,
    }
}

fn in_window(windows: &[Window], t: i64) -> bool {
    windows.iter().any(|w| w.contains(t))
}

impl Sim<'_> {
    /// A timer run: the real decision; an update takes a slot (FleetLock)
    /// and starts its download.
    fn timer(&mut self, t: i64, hi: usize) {
        let p = self.p;
        let next = t + 1800 + self.rng.range(0, 180) + self.rng.range(0, 60);
        self.q.push(next, hi, Ev::Timer);
        let host = &mut self.hosts[hi];
        if host.busy {
            return;
        }
        self.r.runs += 1;
        self.vs[t as usize] += 2;
        let o = observed(p, &self.v, host, t);
        let out = decide(&o);
        host.marker = out.marker_after;
        let Decision::Update { reason } = out.decision else {
            return;
        };
        host.why = match reason {
            UpdateReason::Critical | UpdateReason::Forced => Why::Critical,
            UpdateReason::Unhealthy { .. } => Why::Unhealthy,
            UpdateReason::InWindow { .. }
            | UpdateReason::Finish
            | UpdateReason::RollBack { .. } => Why::Window,
        };
        if let (Some(slots), false) = (p.slots, host.why == Why::Critical) {
            if !host.slot {
                if self.slots_used >= slots {
                    self.r.refused += 1;
                    return;
                }
                self.slots_used += 1;
                host.slot = true;
                self.r.slots_peak = self.r.slots_peak.max(self.slots_used);
            }
        }
        host.busy = true;
        self.downloads += 1;
        self.r.downloads_peak = self.r.downloads_peak.max(self.downloads);
        let done = t + self.rng.range(20, 90);
        self.q.push(done, hi, Ev::Downloaded);
    }

    /// The download is over: install, restart, then the health check.
    fn downloaded(&mut self, t: i64, hi: usize) {
        self.downloads -= 1;
        let install = self.rng.range(5, 15);
        let rt = t + install;
        let windows = &self.windows;
        restart_at(&mut self.r, &self.hosts[hi], rt, false, &|t| {
            in_window(windows, t)
        });
        self.restarting += 1;
        self.r.restarts_peak = self.r.restarts_peak.max(self.restarting);
        let check = if self.p.broken {
            self.p.health_timeout
        } else {
            self.rng.range(10, 40)
        };
        self.q.push(rt + check, hi, Ev::Checked);
    }

    /// The health verdict: at the release (its slot given back), or a
    /// rollback (a broken release).
    fn checked(&mut self, t: i64, hi: usize) {
        let p = self.p;
        let host = &mut self.hosts[hi];
        if p.broken {
            host.reached = true;
            let back = self.rng.range(30, 70);
            let windows = &self.windows;
            restart_at(&mut self.r, host, t + 10, true, &|t| in_window(windows, t));
            self.q.push(t + back, hi, Ev::RolledBack);
            return;
        }
        self.restarting -= 1;
        host.busy = false;
        host.new_installed = true;
        host.down_at = None;
        if host.slot {
            host.slot = false;
            self.slots_used -= 1;
        }
        self.at_target += 1;
        for (i, f) in THRESHOLDS.iter().enumerate() {
            if self.r.converge[i].is_none() && self.at_target as f64 >= f * p.hosts as f64 {
                self.r.converge[i] = Some(t - self.first_window_after_release);
            }
        }
    }

    fn rolled_back(&mut self, hi: usize) {
        self.restarting -= 1;
        let host = &mut self.hosts[hi];
        host.busy = false;
        host.failed = true;
        // A rolled-back host keeps its slot.
    }
}

fn restart_at(r: &mut Report, h: &Host, t: i64, rollback: bool, in_window: &dyn Fn(i64) -> bool) {
    r.restarts += 1;
    if !in_window(t + h.offset) {
        let i = if rollback {
            3
        } else {
            match h.why {
                Why::Window => 0,
                Why::Critical => 1,
                Why::Unhealthy => 2,
            }
        };
        r.outside_host[i] += 1;
    }
    if !in_window(t) {
        r.outside_true += 1;
    }
}

fn hms(s: Option<i64>) -> String {
    match s {
        None => "never".into(),
        Some(s) if s < 0 => format!("-{}", hms(Some(-s))),
        Some(s) => {
            let (d, h, m) = (s / DAY, (s % DAY) / 3600, (s % 3600) / 60);
            if d > 0 {
                format!("{d}d{h:02}h{m:02}m")
            } else {
                format!("{h}h{m:02}m")
            }
        }
    }
}

/// The table's rows: a good, a broken and a critical release, without and
/// with FleetLock.
fn scenarios(base: &Params, slot_counts: &[usize]) -> Vec<(String, Params)> {
    let mut rows: Vec<(String, Params)> = vec![("good release, no FleetLock".into(), base.clone())];
    for s in slot_counts {
        rows.push((
            format!("good release, FleetLock {s} slots"),
            Params {
                slots: Some(*s),
                ..base.clone()
            },
        ));
    }
    rows.push((
        "broken release, no FleetLock".into(),
        Params {
            broken: true,
            ..base.clone()
        },
    ));
    for s in slot_counts {
        rows.push((
            format!("broken release, FleetLock {s} slots"),
            Params {
                broken: true,
                slots: Some(*s),
                ..base.clone()
            },
        ));
    }
    rows.push((
        "critical release, no FleetLock".into(),
        Params {
            critical: true,
            ..base.clone()
        },
    ));
    rows
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut base = Params {
        hosts: 10_000,
        days: 7,
        seed: 1,
        slots: None,
        broken: false,
        critical: false,
        window_hour: 2,
        window_min: 60,
        release_at: 12 * 3600,
        health_timeout: 300,
    };
    let mut slot_counts = vec![50usize, 500];
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .unwrap_or_else(|| panic!("{a} needs a value"))
                .parse::<i64>()
                .unwrap_or_else(|e| panic!("{a}: {e}"))
        };
        match a.as_str() {
            "--hosts" => base.hosts = val() as usize,
            "--days" => base.days = val(),
            "--seed" => base.seed = val() as u64,
            "--window-hour" => base.window_hour = val(),
            "--window-minutes" => base.window_min = val(),
            "--health-timeout" => base.health_timeout = val(),
            "--slots" => slot_counts = vec![val() as usize],
            "--help" | "-h" => {
                println!("fleetsim [--hosts N] [--days D] [--seed S] [--slots K] [--window-hour H] [--window-minutes M] [--health-timeout S]");
                return;
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    let rows = scenarios(&base, &slot_counts);
    println!(
        "fleetsim: {} hosts, {} days, seed {}, daily window {:02}:00 UTC for {} min, release at +12h, health-timeout {} s\n",
        base.hosts, base.days, base.seed, base.window_hour, base.window_min, base.health_timeout
    );
    println!("| scenario | runs | version server req/s mean / peak | downloads in flight (peak) | restarts in flight (peak) | restarts | outside windows, host clock: late / critical / unhealthy / rollback | outside windows, cluster clock | converged 50% / 90% / 99% / 100% after the window opens (critical: after the release) | at target | broken release reached | slot requests refused | slots peak / kept | wall ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, p) in rows {
        let r = simulate(&p);
        let conv = if p.broken {
            "n/a".to_string()
        } else {
            r.converge
                .iter()
                .map(|c| hms(*c))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        println!(
            "| {name} | {} | {:.2} / {} | {} | {} | {} | {} / {} / {} / {} | {} | {conv} | {} | {} | {} | {} | {} |",
            r.runs,
            r.vs_mean,
            r.vs_peak,
            r.downloads_peak,
            r.restarts_peak,
            r.restarts,
            r.outside_host[0],
            r.outside_host[1],
            r.outside_host[2],
            r.outside_host[3],
            r.outside_true,
            r.at_target,
            if p.broken { r.reached_broken.to_string() } else { "-".into() },
            r.refused,
            if p.slots.is_some() { format!("{} / {}", r.slots_peak, r.slots_kept) } else { "-".into() },
            r.wall_ms,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Params {
        Params {
            hosts: 400,
            days: 3,
            seed: 7,
            slots: None,
            broken: false,
            critical: false,
            window_hour: 2,
            window_min: 60,
            release_at: 12 * 3600,
            health_timeout: 300,
        }
    }

    /// The model's invariants at a small size: every host converges on a
    /// good release; a broken one reaches every host without FleetLock and
    /// at most the slot count with it (and those keep their slots); only
    /// critical and unhealthy updates restart outside windows, apart from
    /// runs that outlive their window.
    #[test]
    fn invariants() {
        let good = simulate(&small());
        assert_eq!(good.at_target, 400);
        assert_eq!(good.outside_host[1], 0);
        let broken = simulate(&Params {
            broken: true,
            ..small()
        });
        assert_eq!(broken.reached_broken, 400);
        let held = simulate(&Params {
            broken: true,
            slots: Some(5),
            ..small()
        });
        assert!(held.reached_broken <= 5, "{held:?}");
        assert_eq!(held.slots_kept, held.reached_broken);
        assert_eq!(held.at_target, 0);
        let crit = simulate(&Params {
            critical: true,
            ..small()
        });
        assert_eq!(crit.at_target, 400);
        assert!(crit.outside_host[1] > 0, "critical updates ignore windows");
        // Same seed, same result.
        let again = simulate(&small());
        assert_eq!(again.runs, good.runs);
        assert_eq!(again.converge, good.converge);
    }
}
