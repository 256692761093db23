//! The event loop: every timer run of every host decides through the REAL
//! [`teleport_upgrade::decision::decide`]; the lock server, the fleet's
//! record and the cluster's group ordering are modelled around it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use backends::PkgVersion;
use teleport_upgrade::decision::{decide, Decision, Mode, Observed, PackageState, UpdateReason};
use teleport_upgrade::fleetlock::report::Seen;
use teleport_upgrade::fleetlock::retry::{RELEASE_ATTEMPTS, TAKE_ATTEMPTS};
use teleport_upgrade::fleetlock::SlotRecord;
use teleport_upgrade::schedule::{Schedule, Window};
use teleport_upgrade::target::{Target, TargetVersion};

use crate::model::*;

const OLD: &str = "15.4.2";
const NEW: &str = "15.4.3";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Timer,
    Downloaded,
    Checked,
    RolledBack,
    StateLoss,
}

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

struct Versions {
    schedule: Schedule,
    old: PkgVersion,
    new: PkgVersion,
    target_old: Target,
    target_new: Target,
    new_word: String,
}

struct Sim<'a> {
    p: &'a Params,
    rng: Rng,
    windows: Vec<Window>,
    v: Versions,
    hosts: Vec<Host>,
    q: Queue,
    r: Report,
    vs: Vec<u32>,
    downloads: i64,
    lock: Lock,
    record: Record,
    /// When each group gets the target (`i64::MAX`: not yet).
    group_release: Vec<i64>,
    group_size: Vec<usize>,
    group_at: Vec<usize>,
    at_target: usize,
}

pub fn simulate(p: &Params) -> Report {
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
    let groups = p.groups.len().max(1);
    let hosts = new_hosts(p, &mut rng, end);
    let mut group_size = vec![0; groups];
    for h in &hosts {
        group_size[h.group as usize] += 1;
    }
    let mut q = Queue::default();
    for h in 0..p.hosts {
        let t = if p.sync_boot {
            rng.range(0, 60)
        } else {
            rng.range(0, 1800)
        };
        q.push(t, h, Ev::Timer);
    }
    if let Some((t, _)) = p.state_loss {
        q.push(t, 0, Ev::StateLoss);
    }
    let mut group_release = vec![i64::MAX; groups];
    group_release[0] = p.release_at;
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
        lock: Lock {
            holders: vec![Default::default(); groups],
        },
        record: vec![Default::default(); groups],
        group_release,
        group_size,
        group_at: vec![0; groups],
        at_target: 0,
    };
    sim.r.reachable = sim.hosts.iter().filter(|h| !h.chronic && !h.breaks).count();
    sim.r.chronic = sim.hosts.iter().filter(|h| h.chronic).count();
    while let Some((t, hi, ev)) = sim.q.pop() {
        if t > end {
            break;
        }
        match ev {
            Ev::Timer => sim.timer(t, hi),
            Ev::Downloaded => sim.downloaded(t, hi),
            Ev::Checked => sim.checked(t, hi),
            Ev::RolledBack => sim.rolled_back(t, hi),
            Ev::StateLoss => sim.state_loss(),
        }
    }
    sim.finish(t0, end)
}

/// The fleet: clock offsets, groups, ids (clones), unhealthy agents.
fn new_hosts(p: &Params, rng: &mut Rng, end: i64) -> Vec<Host> {
    let mut next_clone_id = p.hosts as u32;
    let mut clone_left = 0;
    (0..p.hosts)
        .map(|i| {
            let offset = if rng.unit() < 0.01 {
                rng.range(-900, 900)
            } else {
                rng.range(-120, 120)
            };
            let chronic = rng.unit() < p.chronic;
            let empty_schedule = !chronic && rng.unit() < 0.01;
            let down_at = (!chronic && rng.unit() < 0.005).then(|| rng.range(0, end));
            let breaks = rng.unit() < p.fail_rate;
            // Clones come in tens sharing one id.
            if clone_left == 0 && rng.unit() < p.clones / (10.0 - 9.0 * p.clones) {
                clone_left = 10;
                next_clone_id += 1;
            }
            let id = if clone_left > 0 {
                clone_left -= 1;
                next_clone_id
            } else {
                i as u32
            };
            let u = rng.unit();
            let mut acc = 0.0;
            let group = p
                .groups
                .iter()
                .position(|g| {
                    acc += g;
                    u < acc
                })
                .unwrap_or(p.groups.len().saturating_sub(1)) as u8;
            Host {
                offset,
                id,
                group,
                new_installed: false,
                marker: false,
                failed: false,
                slot: false,
                record_lost: false,
                busy: false,
                empty_schedule,
                down_at,
                chronic,
                breaks,
                broken_by_release: false,
                tried: false,
                why: Why::Window,
            }
        })
        .collect()
}

fn in_window(windows: &[Window], t: i64) -> bool {
    windows.iter().any(|w| w.contains(t))
}

impl Sim<'_> {
    /// What a host's run observes at `t` (the cluster's clock).
    fn observed(&self, host: &Host, t: i64) -> Observed {
        let released = t >= self.group_release[host.group as usize];
        let v = &self.v;
        let p = self.p;
        let g = host.group as usize;
        Observed {
            mode: Mode::Run,
            group: None,
            now: t + host.offset,
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
            service_unhealthy: (host.chronic || host.down_at.is_some_and(|d| d <= t))
                .then(|| "teleport.service is failed".to_string()),
            marker_present: host.marker,
            installed: if host.new_installed {
                v.new.clone()
            } else {
                v.old.clone()
            },
            failed_target: host.failed.then(|| v.new_word.clone()),
            failed_critical: host.failed && p.critical,
            v2: None,
            package: PackageState {
                held: Some(true),
                ..Default::default()
            },
            window_margin: teleport_upgrade::config::DEFAULT_WINDOW_MARGIN.as_secs() as i64,
            installer_nop: false,
            agent: teleport_upgrade::health::AgentBefore::Running,
            restart_mode: teleport_upgrade::config::RestartMode::Reload,
            fleet_lock: p.slots.is_some(),
            slot_record: match (host.record_lost, host.slot) {
                (true, _) => SlotRecord::Unknown,
                (false, true) => SlotRecord::Kept,
                (false, false) => SlotRecord::Clear,
            },
            jitter: None,
            guard: None,
            unfinished: None,
            lower_seen: None,
            confirm_interval: 3600,
            fleet_report: p.halt.filter(|_| p.slots.is_some()).map(|rule| Seen::Read {
                counts: self.record[g],
                rule,
            }),
        }
    }

    /// `n` attempts of a lock request: whether one got through.
    fn lock_call(&mut self, t: i64, attempts: u32) -> bool {
        if self.p.outage.is_some_and(|(a, b)| a <= t && t < b) {
            self.r.lock_requests += u64::from(attempts);
            return false;
        }
        for _ in 0..attempts {
            self.r.lock_requests += 1;
            if self.rng.unit() >= self.p.conflict {
                return true;
            }
            self.r.lock_conflicts += 1;
        }
        false
    }

    fn release(&mut self, t: i64, hi: usize) -> bool {
        if !self.lock_call(t, RELEASE_ATTEMPTS) {
            return false;
        }
        let h = &self.hosts[hi];
        self.lock.holders[h.group as usize].remove(&h.id);
        true
    }

    /// A timer run: the real decision; an update takes a slot (FleetLock)
    /// and starts its download.
    fn timer(&mut self, t: i64, hi: usize) {
        let p = self.p;
        let next = t + 1800 + self.rng.range(0, 180) + self.rng.range(0, 60);
        self.q.push(next, hi, Ev::Timer);
        if self.hosts[hi].busy {
            return;
        }
        self.r.runs += 1;
        self.vs[t as usize] += p.requests_per_run;
        let o = self.observed(&self.hosts[hi], t);
        let out = decide(&o);
        self.hosts[hi].marker = out.marker_after;
        if out.release_at_start && self.release(t, hi) {
            self.hosts[hi].record_lost = false;
            self.hosts[hi].slot = false;
        }
        if out.decision == Decision::UpToDate && self.hosts[hi].slot && self.release(t, hi) {
            // A slot recorded as kept is given back at the target.
            self.hosts[hi].slot = false;
        }
        let (Decision::Update { reason }, Some(u)) = (&out.decision, &out.update) else {
            return;
        };
        self.hosts[hi].why = match reason {
            UpdateReason::Critical | UpdateReason::Forced => Why::Critical,
            UpdateReason::Unhealthy { .. } => Why::Unhealthy,
            _ => Why::Window,
        };
        if out.halted.is_some() {
            self.r.halted_runs += 1;
            self.r.no_slot += 1;
            return;
        }
        if u.slot && !self.take(t, hi) {
            self.r.no_slot += 1;
            return;
        }
        let host = &mut self.hosts[hi];
        host.record_lost = false;
        host.busy = true;
        self.downloads += 1;
        self.r.downloads_peak = self.r.downloads_peak.max(self.downloads);
        let done = t + self.rng.range(20, 90);
        self.q.push(done, hi, Ev::Downloaded);
    }

    /// Take a slot of the host's lock group (recursive for its id).
    fn take(&mut self, t: i64, hi: usize) -> bool {
        let slots = self.p.slots.unwrap_or(usize::MAX);
        if !self.lock_call(t, TAKE_ATTEMPTS) {
            return false;
        }
        let h = &self.hosts[hi];
        let held = &mut self.lock.holders[h.group as usize];
        if !held.contains(&h.id) && held.len() >= slots {
            return false;
        }
        held.insert(h.id);
        self.hosts[hi].slot = true;
        true
    }

    fn downloaded(&mut self, t: i64, hi: usize) {
        self.downloads -= 1;
        let rt = t + self.rng.range(5, 15);
        self.restart(rt, hi);
        let h = &self.hosts[hi];
        let bad = h.chronic || h.breaks;
        let check = if bad {
            self.p.health_timeout
        } else {
            self.rng.range(10, 40)
        };
        self.q.push(rt + check, hi, Ev::Checked);
    }

    fn restart(&mut self, t: i64, hi: usize) {
        let h = &self.hosts[hi];
        self.r.restarts += 1;
        if !in_window(&self.windows, t + h.offset) {
            self.r.outside_host += 1;
        }
        if !in_window(&self.windows, t) {
            self.r.outside_true += 1;
        }
    }

    /// The health verdict: healthy (the record's ok, the slot given
    /// back), or a rollback.
    fn checked(&mut self, t: i64, hi: usize) {
        let h = &self.hosts[hi];
        let g = h.group as usize;
        let sick_before = h.chronic || h.why == Why::Unhealthy;
        if h.chronic || h.breaks {
            self.restart(t + 10, hi);
            let back = self.rng.range(30, 70);
            self.q.push(t + back, hi, Ev::RolledBack);
            let h = &mut self.hosts[hi];
            if sick_before {
                h.tried |= h.chronic;
            } else {
                h.broken_by_release = true;
                self.record[g].failed += u64::from(h.slot);
            }
            return;
        }
        if self.hosts[hi].slot {
            self.record[g].ok += 1;
            if self.release(t, hi) {
                self.hosts[hi].slot = false;
            }
        }
        let h = &mut self.hosts[hi];
        h.busy = false;
        h.new_installed = true;
        h.down_at = None;
        h.empty_schedule = false;
        self.at_target += 1;
        self.group_at[g] += 1;
        self.promote(t, g);
        let total = self.r.reachable.max(1) as f64;
        for (i, f) in [0.99, 1.0].iter().enumerate() {
            if self.r.converge[i].is_none() && self.at_target as f64 >= f * total {
                self.r.converge[i] = Some(t - self.p.release_at);
            }
        }
    }

    /// The cluster gives the target to the next group once enough of this
    /// one runs it.
    fn promote(&mut self, t: i64, g: usize) {
        if g + 1 < self.group_release.len()
            && self.group_release[g + 1] == i64::MAX
            && self.group_at[g] as f64 >= PROMOTE * self.group_size[g] as f64
        {
            self.group_release[g + 1] = t;
        }
    }

    fn rolled_back(&mut self, t: i64, hi: usize) {
        let h = &mut self.hosts[hi];
        h.busy = false;
        h.failed = true;
        // A host unhealthy before gives its slot back; one the release
        // broke keeps it.
        if (h.chronic || h.why == Why::Unhealthy) && h.slot && self.release(t, hi) {
            self.hosts[hi].slot = false;
        }
    }

    /// A share of the hosts lose their state file: no record of a slot,
    /// nor of the failed target.
    fn state_loss(&mut self) {
        let share = self.p.state_loss.map_or(0.0, |(_, s)| s);
        for h in &mut self.hosts {
            if self.rng.unit() < share && !h.busy {
                h.failed = false;
                h.marker = false;
                h.record_lost = true;
                h.slot = false;
            }
        }
    }

    fn finish(self, t0: Instant, end: i64) -> Report {
        let mut r = self.r;
        r.at_target = self.at_target;
        r.broken = self.hosts.iter().filter(|h| h.broken_by_release).count();
        r.chronic_tried = self.hosts.iter().filter(|h| h.tried).count();
        r.slots_kept = self.lock.holders.iter().map(|s| s.len()).sum();
        r.vs_mean = self.vs.iter().map(|x| *x as u64).sum::<u64>() as f64 / end.max(1) as f64;
        r.vs_peak = self.vs.iter().copied().max().unwrap_or(0);
        r.wall_ms = t0.elapsed().as_millis();
        r
    }
}
