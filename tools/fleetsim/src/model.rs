//! The world of the simulation: its parameters, hosts, lock server, the
//! fleet's record, and the per-run report. The event loop is in
//! [`crate::sim`].

use teleport_upgrade::fleetlock::report::{Counts, HaltRule};

pub const DAY: i64 = 86_400;

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
}

#[derive(Debug, Clone)]
pub struct Params {
    pub hosts: usize,
    pub days: i64,
    pub seed: u64,
    /// FleetLock slots per lock group, `None`: no FleetLock.
    pub slots: Option<usize>,
    /// The share of hosts healthy before it that the release breaks (0: a
    /// good release, 1: a broken one).
    pub fail_rate: f64,
    pub critical: bool,
    /// The daily window: start hour (UTC) and length in minutes.
    pub window_hour: i64,
    pub window_min: i64,
    /// When the release is published (seconds into the week).
    pub release_at: i64,
    pub health_timeout: i64,
    /// Version-server requests per run (a proxy endpoint: `/version`,
    /// `/critical` and the cluster guard's `/webapi/find`).
    pub requests_per_run: u32,
    /// The share of hosts whose agent is unhealthy all week, whatever
    /// version runs (no update cures them).
    pub chronic: f64,
    /// `fleet-report` with this rule (record per lock group and target).
    pub halt: Option<HaltRule>,
    /// The chance that one lock request meets another host's write
    /// (airlock's compare-and-swap conflict: 500 `failed_lock`).
    pub conflict: f64,
    /// The lock server does not answer in `[from, to)`.
    pub outage: Option<(i64, i64)>,
    /// At this time, this share of hosts lose their state file (re-imaged).
    pub state_loss: Option<(i64, f64)>,
    /// The share of hosts cloned from one image in clones of 10 that
    /// share one id (no `fleet-lock-id`).
    pub clones: f64,
    /// Every timer starts in the same minute (a synchronized boot).
    pub sync_boot: bool,
    /// Update groups, ordered by the cluster: each group's share of the
    /// fleet. The first gets the target at the release, the next one once
    /// [`PROMOTE`] of the previous one runs it. Each group is also its own
    /// FleetLock group (its own slots and record). Empty: one group.
    pub groups: Vec<f64>,
}

/// The share of a group at the target before the cluster gives the target
/// to the next group.
pub const PROMOTE: f64 = 0.8;

/// Why a host's update ran.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Window,
    Critical,
    Unhealthy,
}

#[derive(Clone)]
pub struct Host {
    pub offset: i64,
    /// The FleetLock id (clones share one).
    pub id: u32,
    pub group: u8,
    pub new_installed: bool,
    pub marker: bool,
    pub failed: bool,
    /// Holds a slot by its own record (taken, or kept after a rollback).
    pub slot: bool,
    /// The host's record of its slot was lost.
    pub record_lost: bool,
    pub busy: bool,
    pub empty_schedule: bool,
    pub down_at: Option<i64>,
    /// Unhealthy all week (no update cures it).
    pub chronic: bool,
    /// The release breaks this host.
    pub breaks: bool,
    /// Installed the release and was broken by it.
    pub broken_by_release: bool,
    /// A chronic host that tried the release (rolled back, uncured).
    pub tried: bool,
    pub why: Why,
}

/// The lock server (airlock): per lock group, the ids holding a slot.
#[derive(Default)]
pub struct Lock {
    pub holders: Vec<std::collections::BTreeSet<u32>>,
}

#[derive(Default, Debug, Clone)]
pub struct Report {
    pub runs: u64,
    pub vs_mean: f64,
    pub vs_peak: u32,
    pub downloads_peak: i64,
    pub restarts: u64,
    /// Restarts outside every window by the host's own clock (critical,
    /// unhealthy and rollback restarts included), and by the cluster's.
    pub outside_host: u64,
    pub outside_true: u64,
    /// Seconds from the release until 99 % and 100 % of the hosts the
    /// release can reach (healthy, not broken by it) run it.
    pub converge: [Option<i64>; 2],
    /// Hosts at the release at the end / hosts it can reach.
    pub at_target: usize,
    pub reachable: usize,
    /// Chronic hosts that tried it (rolled back, slot given back).
    pub chronic_tried: usize,
    pub chronic: usize,
    /// Hosts healthy before that the release broke (the blast radius).
    pub broken: usize,
    /// Runs that took no slot: every slot taken, lock errors, halted.
    pub no_slot: u64,
    pub halted_runs: u64,
    /// Lock requests, and those that met a write conflict.
    pub lock_requests: u64,
    pub lock_conflicts: u64,
    /// Slots held at the end by hosts that do not hold one by their own
    /// record (leaked), and kept after rollbacks.
    pub slots_kept: usize,
    pub wall_ms: u128,
}

/// The fleet's record per lock group (the target is the one release).
pub type Record = Vec<Counts>;
