//! One `run`, `force` or `dry-run`, on one road: lock → read the journal →
//! observe → decide → plan → render (dry-run) or execute → record.
//!
//! - the journal: a plan an earlier run left unfinished is an input of the
//!   decision ([`crate::decision::resume`]), never a way round it; it is
//!   retired before this run's plan runs ([`converge`]);
//! - observe: schedule, v2, the installed package and its state (held?,
//!   fully installed?, executables intact?), version server, cluster guard,
//!   health ([`observation`]);
//! - decide: [`crate::decision::decide`], pure: every policy choice;
//! - plan: the gates (trust audit and key pin) and the steps
//!   ([`planning`], [`plan::Plan`]), printed by `dry-run`, executed by `run`;
//! - execute: [`execute::Ctx::execute`], journaled;
//! - record: the state file and metrics ([`record`]).

mod check_install;
pub mod converge;
pub mod dry_run;
pub mod execute;
pub mod failpoint;
pub mod jitter;
pub mod journal;
pub mod kept;
pub mod observation;
pub mod plan;
pub mod planning;
mod record;
mod report;
pub mod signals;
pub mod space;
mod steps;

use std::io::Write;

use crate::config::Config;
use crate::decision::{decide, stand_down, Mode};
use crate::error::{AppError, Exit};
use crate::lock;
use crate::run::{managed_by_v2, read_schedule, Env};
use crate::state::LastRun;

use execute::{Ctx, Done};
use journal::Journal;
use observation::{Ask, Seen};
use planning::Planned;

/// The longest health wait, whatever `health-timeout` says: the unit's
/// `TimeoutStartSec` (45 min) must cover the lock wait, an install, the
/// health wait, and a rollback's install and health wait.
pub const MAX_HEALTH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// `run`, `force` and `dry-run`. Prints the dry run's report to `out`.
pub fn update_command(env: &Env, mode: Mode, dry_run: bool, out: &mut dyn Write) -> Exit {
    let command = match (mode, dry_run) {
        (_, true) => "dry-run",
        (Mode::Force, false) => "force",
        (Mode::Run, false) => "run",
    };
    if !dry_run {
        signals::install();
    }
    let _lock = match (!dry_run).then(|| lock::acquire(&lock::path(&env.system))) {
        Some(Err(e)) => {
            tracing::error!("{e}");
            return e.exit();
        }
        l => l,
    };
    let mut rec = LastRun {
        time: env.clock.now(),
        command: command.into(),
        ..Default::default()
    };
    let mut done = Done::default();
    let result = drive(env, mode, dry_run, out, &mut rec, &mut done);
    record::finish(env, rec, done, result, dry_run)
}

/// The one road every run takes, fresh or resuming.
fn drive(
    env: &Env,
    mode: Mode,
    dry_run: bool,
    out: &mut dyn Write,
    rec: &mut LastRun,
    done: &mut Done,
) -> Result<(), AppError> {
    let config = Config::load(&env.config_dir)?;
    // An invalid fleet-lock setting is a configuration error on every run.
    crate::fleetlock::settings(&config)?;
    let journal = converge::unfinished(env, dry_run, out, rec);
    let schedule = read_schedule(&config);
    rec.schedule = Some(schedule.to_string());
    tracing::info!(schedule = %schedule, file = %config.schedule_path().display(), "read the maintenance schedule");
    let v2 = managed_by_v2(&env.system);
    if let Some(d) = stand_down(&schedule, v2.as_deref()) {
        report::stand_down(&d, rec, dry_run, out);
        let why = crate::decision::Resume::Abandon { why: d.to_string() };
        converge::retire(env, journal, &why, false, dry_run, out, done);
        return Ok(());
    }
    let unfinished = journal.as_ref().map(Journal::unfinished);
    let ask = Ask {
        mode,
        dry_run,
        schedule,
        v2,
        unfinished,
        rec,
    };
    let mut seen = observation::observe(env, &config, ask)?;
    let outcome = decide(&seen.observed);
    if let crate::decision::Decision::Update {
        reason: crate::decision::UpdateReason::RollBack { why, .. },
    } = &outcome.decision
    {
        done.failed_health = Some(why.clone());
    }
    report::decision(
        &seen,
        &outcome,
        config.cluster_guard.word(),
        rec,
        dry_run,
        out,
    );
    if !dry_run {
        record::after_decision(env, &config, &seen, &outcome, rec, done);
    }
    let planned = planning::plan(env, &config, &mut seen, &outcome, dry_run, out, rec)?;
    let rebuilt = planned.runs_update();
    converge::retire(env, journal, &outcome.resume, rebuilt, dry_run, out, done);
    if dry_run {
        dry_run::print(&seen, &planned, env.verbose, out);
        if outcome.release_at_start {
            let _ = writeln!(out, "fleet lock: would tell the lock server this host holds no slot (no record of one here: the protocol's start-up release)");
        }
    } else if let Some(plan) = &planned.plan {
        let r = execute_plan(env, &seen, &planned, plan.clone(), rec, done);
        if let Err(AppError::NotOffered(_)) = &r {
            // A lagging mirror: looked at again by the re-check timer too.
            crate::health::arrange_recheck(
                &env.system,
                &env.runner,
                config.recheck_delay,
                "a target the repository offers by then is installed",
            );
        }
        r?;
        if rebuilt && outcome.resume != crate::decision::Resume::None {
            tracing::info!("finished the plan an earlier run left ({})", outcome.resume);
        }
    }
    planned.refusal.map_or(Ok(()), Err)
}

/// Execute `plan`, journaled, and say what it achieved.
fn execute_plan(
    env: &Env,
    seen: &Seen,
    planned: &Planned,
    plan: plan::Plan,
    rec: &mut LastRun,
    done: &mut Done,
) -> Result<(), AppError> {
    let before = seen.observed.agent;
    let installed = &seen.installed;
    let mut j = Journal::new(
        env.clock.now(),
        &rec.command,
        installed.name.as_str(),
        before.into(),
        plan,
    );
    j.counted = done.counted_before;
    let mut ctx = Ctx {
        env,
        backend: seen.backend.as_ref(),
        pkg: installed.name.clone(),
        source: planned.source.clone().expect("a plan has its source"),
        before,
        check: planned.check.clone(),
        journal_path: journal::path(&env.system),
        moved: None,
        goal: j.plan.goal.clone(),
    };
    ctx.execute(j, done)?;
    if before == crate::health::AgentBefore::Unknown && done.installed_after.is_some() {
        tracing::warn!(
            "the agent's health is unknown (systemd does not answer): the update is not verified"
        );
        done.unverified = true;
    }
    if done.unverified {
        rec.detail = Some(format!(
            "{} (the agent's health could not be verified{})",
            rec.detail.clone().unwrap_or_default(),
            if done.deferred {
                "; its restart and health check are left in the plan for the next run"
            } else {
                ""
            }
        ));
    }
    if let Some(v) = &done.installed_after {
        tracing::info!(package = %installed.name, from = %installed.version, to = %v, "the agent package is at {v} and held");
    }
    Ok(())
}
