//! fleetsim: a discrete-event model of N hosts running `teleport-upgrade`
//! from its timer, each run deciding through the REAL
//! [`teleport_upgrade::decision::decide`]. No threads, no sleeps: one
//! event queue ordered by (time, sequence), one seeded generator, so a run
//! is reproducible from its seed.
//!
//! Modelled:
//! - the timer (`systemd/teleport-upgrade.timer`): a run about every
//!   30 minutes after the last start plus `RandomizedDelaySec=3min` plus up
//!   to `AccuracySec=1min`; timers start at a random phase (or, after a
//!   synchronized boot, in the same minute);
//! - 3 version-server requests per run (a proxy endpoint: `/version`,
//!   `/critical`, and the cluster guard's `/webapi/find`);
//! - per-host clock offsets (most within ±2 min, 1% within ±15 min);
//! - a daily maintenance window, the same for the whole fleet;
//! - unhealthy agents: 10 % chronically (all week, whatever version: no
//!   update cures them), 1 % that cannot reach their cluster and 0.5 % that
//!   go down once (an update cures those);
//! - a release published 12 h into the week that breaks a share of the
//!   hosts healthy before it (0 %, 5 %, 100 %), or a critical one;
//! - FleetLock (airlock): K slots per lock group, write conflicts (each
//!   request, with the client's bounded retries), an outage, cloned ids
//!   (10 hosts per id), hosts losing their state file (the start-up
//!   release frees what they kept);
//! - `fleet-report`: the record per group and target, and the real
//!   decision's failure-rate halt;
//! - update groups the cluster orders: the next group gets the target once
//!   80 % of the previous one runs it.
//!
//! An update: download 20-90 s; install 5-15 s; restart and health check
//! 10-40 s (unhealthy: the health timeout, then a rollback, 30-70 s).

mod model;
mod sim;

use model::{Params, Report, DAY};
use teleport_upgrade::fleetlock::report::HaltRule;

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

pub fn base(hosts: usize) -> Params {
    Params {
        hosts,
        days: 7,
        seed: 1,
        slots: None,
        fail_rate: 0.0,
        critical: false,
        window_hour: 2,
        window_min: 60,
        release_at: 12 * 3600,
        health_timeout: 300,
        requests_per_run: 3,
        chronic: 0.10,
        halt: None,
        conflict: 0.0,
        outage: None,
        state_loss: None,
        clones: 0.0,
        sync_boot: false,
        groups: Vec::new(),
    }
}

/// The halt of the issue: 2 % once 20 updates completed.
pub const HALT: HaltRule = HaltRule {
    rate: 20,
    min_sample: 20,
};

/// The table's rows, each with its letter (`--only`).
pub fn scenarios(b: &Params) -> Vec<(char, &'static str, Params)> {
    let p = |f: &dyn Fn(&mut Params)| {
        let mut p = b.clone();
        f(&mut p);
        p
    };
    let groups = vec![0.05, 0.25, 0.70];
    let outage_at = DAY + 2 * 3600 + 600;
    vec![
        ('A', "good, no FleetLock", b.clone()),
        ('B', "good, 500 slots", p(&|p| p.slots = Some(500))),
        (
            'C',
            "good, 500 slots, halt 2 %/20",
            p(&|p| {
                p.slots = Some(500);
                p.halt = Some(HALT);
            }),
        ),
        ('D', "100 % bad, no FleetLock", p(&|p| p.fail_rate = 1.0)),
        (
            'E',
            "100 % bad, 50 slots",
            p(&|p| {
                p.fail_rate = 1.0;
                p.slots = Some(50);
            }),
        ),
        (
            'F',
            "100 % bad, 500 slots, halt 2 %/20",
            p(&|p| {
                p.fail_rate = 1.0;
                p.slots = Some(500);
                p.halt = Some(HALT);
            }),
        ),
        (
            'G',
            "5 % bad, 500 slots",
            p(&|p| {
                p.fail_rate = 0.05;
                p.slots = Some(500);
            }),
        ),
        (
            'H',
            "5 % bad, 500 slots, halt 2 %/20",
            p(&|p| {
                p.fail_rate = 0.05;
                p.slots = Some(500);
                p.halt = Some(HALT);
            }),
        ),
        (
            'I',
            "5 % bad, no FleetLock, 3 groups",
            p(&|p| {
                p.fail_rate = 0.05;
                p.groups = groups.clone();
            }),
        ),
        (
            'J',
            "100 % bad, no FleetLock, 3 groups",
            p(&|p| {
                p.fail_rate = 1.0;
                p.groups = groups.clone();
            }),
        ),
        (
            'K',
            "5 % bad, 3 groups, 500 slots each, halt 2 %/20",
            p(&|p| {
                p.fail_rate = 0.05;
                p.slots = Some(500);
                p.halt = Some(HALT);
                p.groups = groups.clone();
            }),
        ),
        (
            'L',
            "good, 500 slots, 15 % lock conflicts, 1 h lock outage in day 1's window",
            p(&|p| {
                p.slots = Some(500);
                p.conflict = 0.15;
                p.outage = Some((outage_at - 1200, outage_at + 2400));
            }),
        ),
        (
            'M',
            "100 % bad, 50 slots, 20 % of hosts lose their state on day 3",
            p(&|p| {
                p.fail_rate = 1.0;
                p.slots = Some(50);
                p.state_loss = Some((3 * DAY, 0.2));
            }),
        ),
        (
            'N',
            "100 % bad, 50 slots, 10 % cloned ids (10 per id)",
            p(&|p| {
                p.fail_rate = 1.0;
                p.slots = Some(50);
                p.clones = 0.1;
            }),
        ),
        (
            'O',
            "good, no FleetLock, synchronized boot",
            p(&|p| p.sync_boot = true),
        ),
        ('P', "critical, no FleetLock", p(&|p| p.critical = true)),
    ]
}

pub const HEADER: &str = "| | scenario | proxy req/s mean / peak | downloads in flight (peak) | restarts outside windows: host / cluster clock | 99 % / 100 % of reachable hosts at the release (from its publication) | at the release / reachable | chronic hosts that tried it | blast radius (healthy hosts the release broke) | runs without a slot (halted) | lock requests (conflicts) | slots held at the end | wall ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|";

pub fn row(letter: char, name: &str, r: &Report) -> String {
    format!(
        "| {letter} | {name} | {:.1} / {} | {} | {} / {} | {} / {} | {} / {} | {} / {} | {} | {} ({}) | {} ({}) | {} | {} |",
        r.vs_mean,
        r.vs_peak,
        r.downloads_peak,
        r.outside_host,
        r.outside_true,
        hms(r.converge[0]),
        hms(r.converge[1]),
        r.at_target,
        r.reachable,
        r.chronic_tried,
        r.chronic,
        r.broken,
        r.no_slot,
        r.halted_runs,
        r.lock_requests,
        r.lock_conflicts,
        r.slots_kept,
        r.wall_ms,
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut b = base(10_000);
    let mut only: Option<String> = None;
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        let num = |v: String| v.parse::<i64>().unwrap_or_else(|e| panic!("{a}: {e}"));
        match a.as_str() {
            "--hosts" => b.hosts = num(val()) as usize,
            "--days" => b.days = num(val()),
            "--seed" => b.seed = num(val()) as u64,
            "--window-hour" => b.window_hour = num(val()),
            "--window-minutes" => b.window_min = num(val()),
            "--health-timeout" => b.health_timeout = num(val()),
            "--only" => only = Some(val()),
            "--help" | "-h" => {
                println!("fleetsim [--hosts N] [--days D] [--seed S] [--window-hour H] [--window-minutes M] [--health-timeout S] [--only LETTERS]");
                return;
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    println!(
        "fleetsim: {} hosts, {} days, seed {}, daily window {:02}:00 UTC for {} min, release at +12h, health-timeout {} s, 10 % chronically unhealthy, 3 requests per run\n",
        b.hosts, b.days, b.seed, b.window_hour, b.window_min, b.health_timeout
    );
    println!("{HEADER}");
    for (letter, name, p) in scenarios(&b) {
        if only.as_ref().is_some_and(|o| !o.contains(letter)) {
            continue;
        }
        println!("{}", row(letter, name, &sim::simulate(&p)));
    }
}

#[cfg(test)]
mod tests;
