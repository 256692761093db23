//! Record: what a run did, into the state file and the metrics; and what
//! a decision leaves behind whatever the plan (the unhealthy marker, the
//! re-check, a FleetLock slot kept since a rollback).

use crate::config::Config;
use crate::decision::{Decision, Outcome};
use crate::error::{AppError, Exit};
use crate::health;
use crate::metrics;
use crate::run::Env;
use crate::state::{self, LastRun};

use super::execute::Done;
use super::observation::Seen;

/// End the run: the exit code, the record (not for a dry run).
pub fn finish(
    env: &Env,
    mut rec: LastRun,
    done: Done,
    result: Result<(), AppError>,
    dry_run: bool,
) -> Exit {
    let mut mirror_wait = None;
    let exit = match &result {
        Ok(()) => Exit::Ok,
        Err(e @ AppError::NotOffered(_)) if rec.target.is_some() => {
            let (w, exit) = waited_for_mirror(env, &rec, e);
            rec.error = Some(e.to_string());
            mirror_wait = Some(w);
            exit
        }
        Err(e) => {
            tracing::error!("{e}");
            rec.error = Some(e.to_string());
            e.exit()
        }
    };
    rec.result = match &result {
        Err(AppError::NoSlot(_)) => state::RunResult::NoSlot,
        Err(AppError::Halted(_)) => state::RunResult::RolloutHalted,
        Err(AppError::NotOffered(_)) => state::RunResult::WaitingForMirror,
        Err(AppError::NoSpace(_)) => state::RunResult::NoSpace,
        _ => exit.into(),
    };
    rec.exit_code = exit as u8;
    if done.installed_after.is_some() {
        rec.installed_after = done.installed_after.clone();
    }
    if done.failed_health.is_some() {
        rec.failed_health = done.failed_health.clone();
    }
    rec.repairs = done.repaired.clone();
    rec.abandoned = done.abandoned.clone();
    if !dry_run {
        let mut done = done;
        add_to_fleet_report(env, &mut done, rec.time);
        record(env, rec, exit, &done, mirror_wait);
    }
    exit
}

/// A target the repository does not offer yet: how long this host has
/// waited for it, and the run's exit ([`crate::decision::mirror_wait`]).
fn waited_for_mirror(env: &Env, rec: &LastRun, e: &AppError) -> (state::MirrorWait, Exit) {
    // `force` is an operator asking now: told at once (exit 4).
    let default = crate::settings::row("mirror-wait").default_duration();
    let limit = match rec.command.as_str() {
        "run" => Config::load(&env.config_dir).map_or(default, |c| c.mirror_wait),
        _ => std::time::Duration::ZERO,
    }
    .as_secs();
    let before = state::load(&state::path(&env.system)).mirror_wait;
    let target = rec.target.as_deref().unwrap_or_default();
    let (w, exit) = crate::decision::mirror_wait::judge(before.as_ref(), target, rec.time, limit);
    let waited = rec.time - w.since;
    if exit == Exit::Ok {
        tracing::warn!("{e} (waiting {waited} s of mirror-wait's {limit} s: not a failure yet)");
    } else {
        tracing::error!("{e} (waited {waited} s, mirror-wait is {limit} s: check that the repository or mirror gets {target})");
    }
    (w, exit)
}

/// The record step of `fleet-report`: this run's completed update under a
/// slot is added to the fleet's record (compare-and-swap, bounded). A
/// failure is logged and counted; the fleet's halt then misses one update.
fn add_to_fleet_report(env: &Env, done: &mut Done, now: i64) {
    let Some(v) = done.report.clone() else {
        return;
    };
    let settings = Config::load(&env.config_dir)
        .ok()
        .and_then(|c| crate::fleetlock::report_settings(&c).ok().flatten());
    let Some((base, rule)) = settings else {
        return;
    };
    let r = crate::fleetlock::report::Store::new(&base).and_then(|s| s.add(&v.group, &v.to, v.ok));
    let word = match (&r, v.ok) {
        (Err(_), _) => "error",
        (Ok(_), true) => "ok",
        (Ok(_), false) => "failed",
    };
    let mut seen = state::Rollout {
        time: now,
        group: v.group.clone(),
        target: v.to.clone(),
        halt_rate: rule.rate_text(),
        min_sample: rule.min_sample,
        ..Default::default()
    };
    match r {
        Ok(c) => {
            tracing::info!(group = %v.group, target = %v.to, ok = c.ok, failed = c.failed, "added this update ({word}) to the fleet's record");
            (seen.ok, seen.failed) = (c.ok, c.failed);
        }
        Err(e) => {
            tracing::warn!(group = %v.group, target = %v.to, "cannot add this update ({}) to the fleet's record: {e}", if v.ok { "ok" } else { "failed" });
            seen.error = Some(e);
        }
    }
    done.rollout = Some(seen);
    *done.report_writes.entry(word.to_string()).or_default() += 1;
}

/// What the decision leaves behind, whatever is planned: the unhealthy
/// marker (and the re-check after a first sighting), and a FleetLock slot
/// kept since a rollback given back once the host is healthy at the target.
pub fn after_decision(
    env: &Env,
    config: &Config,
    seen: &Seen,
    o: &Outcome,
    rec: &LastRun,
    done: &mut Done,
) {
    let now = seen.observed.now;
    if o.marker_after {
        tracing::info!(file = %config.marker_path().display(), "marking the agent unhealthy for the next run");
    }
    set_marker(env, config, o.marker_after, now);
    if o.marker_after && !seen.marker_seen {
        // The first unhealthy sighting: the second comes minutes later.
        health::arrange_recheck(
            &env.system,
            &env.runner,
            config.recheck_delay,
            "an agent still unhealthy then is updated if an update is due",
        );
    }
    if let Some(d) = &o.disagreement {
        tracing::warn!("{d}: a load balancer in front of proxies of different versions (a rolling proxy upgrade)? a lower target is installed only when two checks unhealthy-interval apart advertise it");
    }
    done.lower_target = Some(o.lower_after.clone());
    done.halted = o.halted.is_some();
    done.rollout = rollout_seen(config, seen, o);
    done.disagreement = o.disagreement.clone();
    if o.decision == Decision::UpToDate && o.repairs.is_empty() {
        release_kept_slot(env, config, rec.unhealthy.is_some(), done);
    }
    if o.release_at_start {
        release_at_start(env, config, done);
    }
}

/// The fleet's record as the decision saw it, for the state file.
fn rollout_seen(config: &Config, seen: &Seen, o: &Outcome) -> Option<state::Rollout> {
    use crate::fleetlock::report::Seen as R;
    let r = seen.observed.fleet_report.as_ref()?;
    let group = crate::fleetlock::settings(config).ok().flatten()?.group;
    let crate::target::Target::Version(t) = &seen.observed.target else {
        return None;
    };
    let rule = crate::fleetlock::report_settings(config).ok().flatten()?.1;
    let mut v = state::Rollout {
        time: seen.observed.now,
        group,
        target: t.package_version().to_string(),
        halt_rate: rule.rate_text(),
        min_sample: rule.min_sample,
        halted: o.halted.is_some(),
        ..Default::default()
    };
    match r {
        R::Read { counts, .. } => (v.ok, v.failed) = (counts.ok, counts.failed),
        R::Unreachable(e) => v.error = Some(e.clone()),
    }
    Some(v)
}

/// The FleetLock protocol's start-up release ([`Outcome::release_at_start`]):
/// a slot held under this id before the host's record was lost is freed.
/// A failure is logged; the next run tries again.
fn release_at_start(env: &Env, config: &Config, done: &mut Done) {
    let (group, id) = match super::planning::slot_id(env, config) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("cannot make the FleetLock start-up release: {e}");
            return;
        }
    };
    let r = super::execute::fleet_client(env, &group, &id)
        .map_err(|e| e.to_string())
        .and_then(|c| {
            let c = c.ok_or("fleet-lock is not set")?;
            super::execute::lock_call(env, "release", done, || c.release())
                .map_err(|e| e.to_string())
        });
    match r {
        Ok(()) => {
            tracing::info!(group = %group, id = %id, "no record of a FleetLock slot here: told the lock server this host holds none (the protocol's start-up release)");
            done.slot_released = true;
            done.clear = Some(crate::fleetlock::SlotId { group, id });
        }
        Err(e) => {
            tracing::warn!(group = %group, "no record of a FleetLock slot here, and the start-up release failed: {e}; the next run tries again")
        }
    }
}

fn set_marker(env: &Env, config: &Config, present: bool, now: i64) {
    if !present {
        // v1's marker (a host migrating from the shipped updater) is
        // consumed like ours.
        let v1 = state::v1_marker(&env.system);
        if let Err(e) = std::fs::remove_file(&v1) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %v1.display(), "cannot remove v1's unhealthy marker: {e}");
            }
        }
    }
    let p = config.marker_path();
    if let Err(e) = crate::marker::set(&p, present, now) {
        tracing::warn!(file = %p.display(), "cannot update the unhealthy marker: {e}");
    }
}

/// Write what the run did into the state file and the metrics.
fn record(
    env: &Env,
    rec: LastRun,
    exit: Exit,
    done: &Done,
    mirror_wait: Option<state::MirrorWait>,
) {
    let path = state::path(&env.system);
    let mut st = state::load(&path);
    state::clear_old_recovery(&mut st);
    let updated = rec.decision == Some(state::Decided::Update)
        && rec.installed_after.is_some()
        && !done.counted_before;
    if exit == Exit::Ok {
        st.last_success = Some(rec.time);
    }
    if updated && (exit == Exit::Ok || done.counted_now) {
        st.last_update = Some(rec.time);
        st.updates_total += 1;
    }
    if rec.target.is_some() {
        st.last_check = Some(rec.time);
    }
    st.repairs_total += done.repaired.len() as u64;
    if done.abandoned.is_some() {
        st.abandoned_total += 1;
    }
    if exit != Exit::Ok {
        *st.failures.entry(rec.result.to_string()).or_default() += 1;
    }
    match exit {
        Exit::Ok if updated => st.failed_target = None,
        Exit::RolledBack | Exit::RollbackFailed => {
            if exit == Exit::RolledBack {
                st.rollbacks_total += 1;
                st.uncured_total += u64::from(done.uncured);
            }
            st.failed_target = rec.target.clone().map(|version| state::FailedTarget {
                version,
                time: rec.time,
                why: rec.failed_health.clone().unwrap_or_default(),
                critical: rec.critical == Some(true),
            });
        }
        _ => {}
    }
    if done.slot_asked {
        st.fleet_lock_clear = None;
    }
    for (op, by) in &done.lock_requests {
        for (word, n) in by {
            *st.fleet_lock_requests
                .entry(op.clone())
                .or_default()
                .entry(word.clone())
                .or_default() += n;
        }
    }
    if mirror_wait.is_some() {
        st.mirror_waits_total += 1;
        st.mirror_wait = mirror_wait;
    } else if st.mirror_wait.as_ref().is_some_and(|w| {
        !crate::decision::mirror_wait::keep(
            w,
            rec.target.as_deref(),
            rec.installed_after
                .as_deref()
                .or(rec.installed_before.as_deref()),
        )
    }) {
        st.mirror_wait = None;
    }
    if let Some(lower) = &done.lower_target {
        st.lower_target = lower.clone();
    }
    if let Some(what) = &done.disagreement {
        st.disagreements_total += 1;
        st.last_disagreement = Some(state::Disagreement {
            time: rec.time,
            what: what.clone(),
        });
    }
    if let Some(r) = &done.rollout {
        st.fleet_rollout = Some(r.clone());
    }
    st.rollout_halts_total += u64::from(done.halted);
    for (w, n) in &done.report_writes {
        *st.fleet_report_writes.entry(w.clone()).or_default() += n;
    }
    if let Some(k) = &done.slot_kept {
        st.fleet_lock = Some(k.clone());
        st.fleet_lock_clear = None;
    } else if done.slot_released {
        st.fleet_lock = None;
        if done.clear.is_some() {
            st.fleet_lock_clear = done.clear.clone();
        }
    }
    st.last_run = Some(rec);
    if let Err(e) = state::save(&path, &st) {
        tracing::warn!(file = %path.display(), "cannot write the state file: {e}");
    }
    write_metrics(env, &st);
}

/// The Prometheus textfile, where `metrics-dir` (or its default) says.
fn write_metrics(env: &Env, st: &state::State) {
    let setting = match Config::load(&env.config_dir) {
        Ok(c) => c.metrics,
        Err(_) => crate::config::Metrics::Default,
    };
    let dir = match setting {
        crate::config::Metrics::Off => None,
        crate::config::Metrics::Dir(d) => Some(env.system.path(d)),
        crate::config::Metrics::Default => {
            let d = env.system.path(metrics::DEFAULT_DIR);
            d.is_dir().then_some(d)
        }
    };
    if let Some(dir) = dir {
        match metrics::write(&dir, st) {
            Ok(p) => tracing::debug!(file = %p.display(), "wrote the metrics"),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot write the metrics file: {e}")
            }
        }
    }
}

/// A FleetLock slot kept after a rollback is given back once the host is
/// healthy at the target again: the target was changed to a version this
/// host runs (the operator re-targeted the fleet away from the broken
/// release). A failure is logged; the next run tries again.
fn release_kept_slot(env: &Env, config: &Config, unhealthy: bool, done: &mut Done) {
    let Some(k) = state::load(&state::path(&env.system)).fleet_lock else {
        return;
    };
    if unhealthy {
        tracing::warn!(group = %k.group, "keeping the FleetLock slot: the agent is not healthy");
        return;
    }
    let client = match crate::fleetlock::settings(config) {
        Ok(Some(mut s)) => {
            s.group = k.group.clone();
            crate::fleetlock::client::Client::new(&s, &k.id)
        }
        Ok(None) => {
            tracing::warn!(group = %k.group, "a FleetLock slot is recorded as kept, but fleet-lock is not set: free it on the lock server");
            return;
        }
        Err(e) => Err(e.to_string()),
    };
    match client.map_err(|e| e.to_string()).and_then(|c| {
        super::execute::lock_call(env, "release", done, || c.release()).map_err(|e| e.to_string())
    }) {
        Ok(()) => {
            tracing::info!(group = %k.group, id = %k.id, "the agent is healthy at the target: gave back the FleetLock slot kept since the rollback ({})", k.why);
            done.slot_released = true;
            done.clear = Some(crate::fleetlock::SlotId {
                group: k.group.clone(),
                id: k.id.clone(),
            });
        }
        Err(e) => {
            tracing::warn!(group = %k.group, "cannot give back the FleetLock slot kept since the rollback: {e}; the next run tries again")
        }
    }
}
