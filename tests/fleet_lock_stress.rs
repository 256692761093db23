//! Opt-in stress run of FleetLock against a lock server that answers as
//! airlock does over a real etcd (`testkit::fleetlock`): hundreds of
//! clients (the updater's own FleetLock client and retry rule, in threads;
//! not whole updater runs, which would need an apt root each) each take a
//! slot, hold it for a short "update", and give it back, at once. A full
//! group is asked again after a short pause (a timer run, scaled down).
//! Measured twice: with the retry rule of a run ([`retry::retrying`]) and
//! with one request per operation (the client before it). Reports the
//! requests, the write-conflict rate, the full answers, and the stuck
//! slots: releases that failed for good (the slot stays held until the
//! host's next run, ~30 min later) and holders left in etcd at the end.
//!
//! ```sh
//! FLEET_LOCK_STRESS=300 cargo test --release --test fleet_lock_stress -- --nocapture
//! # FLEET_LOCK_STRESS_SLOTS=10 (default)
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use teleport_upgrade::fleetlock::client::{Client, Error};
use teleport_upgrade::fleetlock::{parse_url, retry, Settings};
use testkit::fleetlock::FleetLock;

struct Tally {
    stuck: AtomicUsize,
    gave_up: AtomicUsize,
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn call(c: &Client, take: bool, retries: bool, seed: &mut u64) -> Result<(), Error> {
    let op = || if take { c.take() } else { c.release() };
    let attempts = if take {
        retry::TAKE_ATTEMPTS
    } else {
        retry::RELEASE_ATTEMPTS
    };
    if !retries {
        return op();
    }
    let mut s = *seed;
    let r = retry::retrying(
        attempts,
        op,
        || xorshift(&mut s),
        |d| {
            std::thread::sleep(d);
            true
        },
    )
    .map_err(|(e, _)| e);
    *seed = s;
    r
}

/// One host: take (again after a pause while the group is full, at most
/// 2,000 times), hold, give back.
fn host(lock_url: &str, i: usize, retries: bool, t: &Tally) {
    let s = Settings {
        base: parse_url(lock_url, true).unwrap(),
        group: "default".into(),
        id: None,
    };
    let c = Client::new(&s, &format!("host-{i:04}")).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ ((i as u64 + 1) * 0x1000_0001);
    for _ in 0..2000 {
        match call(&c, true, retries, &mut seed) {
            Ok(()) => {
                std::thread::sleep(Duration::from_millis(20 + xorshift(&mut seed) % 60));
                if call(&c, false, retries, &mut seed).is_err() {
                    t.stuck.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
            Err(e) if !e.definite() => {
                // The server may have granted it: give it back (a run's undo).
                if call(&c, false, retries, &mut seed).is_err() {
                    t.stuck.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(50 + xorshift(&mut seed) % 100));
    }
    t.gave_up.fetch_add(1, Ordering::SeqCst);
}

fn round(clients: usize, slots: usize, retries: bool) {
    let lock = FleetLock::start(slots);
    let t = Tally {
        stuck: AtomicUsize::new(0),
        gave_up: AtomicUsize::new(0),
    };
    let started = Instant::now();
    let url = lock.url();
    std::thread::scope(|s| {
        for i in 0..clients {
            let (t, url) = (&t, &url);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(s, move || host(url, i, retries, t))
                .unwrap();
        }
    });
    let reqs = lock.requests();
    let conflicts = lock.conflicts();
    let left = lock.holders("default");
    eprintln!(
        "{clients} clients, {slots} slots, {}: {:.1} s; {} requests, {} write conflicts ({:.1} %), {} full; releases failed for good (stuck until the next run): {}; holders left in etcd: {}; hosts that never got a slot: {}; most holders at once: {}",
        if retries { "retries within the run" } else { "one request per operation" },
        started.elapsed().as_secs_f64(),
        reqs.len(),
        conflicts,
        100.0 * conflicts as f64 / reqs.len().max(1) as f64,
        lock.refused(),
        t.stuck.load(Ordering::SeqCst),
        left.len(),
        t.gave_up.load(Ordering::SeqCst),
        lock.max_holders("default"),
    );
    assert!(
        lock.max_holders("default") <= slots,
        "never more holders than slots"
    );
}

#[test]
fn hundreds_of_clients() {
    let Some(clients) = std::env::var("FLEET_LOCK_STRESS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        eprintln!("skipped: set FLEET_LOCK_STRESS=<clients> (e.g. 300) to run");
        return;
    };
    let slots = std::env::var("FLEET_LOCK_STRESS_SLOTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    round(clients, slots, false);
    round(clients, slots, true);
}
