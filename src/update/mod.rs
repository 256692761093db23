//! One `run`, `force` or `dry-run`: resume → observe → decide → plan →
//! execute → record.
//!
//! - resume: a plan an earlier run left unfinished (its journal) is
//!   finished or undone before anything else (`dry-run` says what it would
//!   do about it);
//! - observe: schedule, v2, the installed package and its state (held?,
//!   fully installed?, executables intact?), version server, health;
//! - decide: [`crate::decision::decide`], pure;
//! - plan: [`plan::Plan`], printed by `dry-run`, executed by `run`;
//! - execute: [`execute::Ctx::execute`], journaled;
//! - record: the state file and metrics.

pub mod dry_run;
pub mod execute;
pub mod failpoint;
pub mod jitter;
pub mod journal;
pub mod plan;
pub mod signals;

use std::io::Write;

use backends::{Backend, Installed, Source};

use crate::client::{Client, Via};
use crate::config::{Config, Installer};
use crate::decision::{decide, stand_down, Mode, Observed};
use crate::error::{AppError, Exit};
use crate::health::{self, AgentBefore};
use crate::run::{audit, installed_agent, managed_by_v2, read_schedule, select_backend, Env};
use crate::state::{self, LastRun};
use crate::verify::{self, Check};
use crate::{lock, metrics, observe, target::Target};

use execute::{Ctx, Done};
use journal::Journal;
use plan::{Facts, Plan};

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
    let _lock = if dry_run {
        None
    } else {
        match lock::acquire(&lock::path(&env.system)) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!("{e}");
                return e.exit();
            }
        }
    };
    let mut rec = LastRun {
        time: env.clock.now(),
        command: command.into(),
        ..Default::default()
    };
    let mut done = Done::default();
    let result = update_inner(env, mode, dry_run, out, &mut rec, &mut done);
    let exit = match &result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            tracing::error!("{e}");
            rec.error = Some(e.to_string());
            e.exit()
        }
    };
    rec.result = exit.into();
    rec.exit_code = exit as u8;
    if done.installed_after.is_some() {
        rec.installed_after = done.installed_after.clone();
    }
    if done.failed_health.is_some() {
        rec.failed_health = done.failed_health.clone();
    }
    rec.repairs = done.repaired.clone();
    if !dry_run {
        record(env, rec, exit, &done);
    }
    exit
}

/// Write what the run did into the state file and the metrics.
fn record(env: &Env, rec: LastRun, exit: Exit, done: &Done) {
    let path = state::path(&env.system);
    let mut st = state::load(&path);
    state::clear_old_recovery(&mut st);
    let updated = (rec.decision == Some(state::Decided::Update) && rec.installed_after.is_some())
        || done.resumed_update;
    if exit == Exit::Ok {
        st.last_success = Some(rec.time);
        if updated {
            st.last_update = Some(rec.time);
            st.updates_total += 1;
        }
    }
    st.repairs_total += done.repaired.len() as u64;
    if exit != Exit::Ok {
        *st.failures.entry(rec.result.to_string()).or_default() += 1;
    }
    match exit {
        Exit::Ok if updated => st.failed_target = None,
        Exit::RolledBack | Exit::RollbackFailed => {
            if exit == Exit::RolledBack {
                st.rollbacks_total += 1;
            }
            st.failed_target = rec.target.clone().map(|version| state::FailedTarget {
                version,
                time: rec.time,
                why: rec.failed_health.clone().unwrap_or_default(),
            });
        }
        _ => {}
    }
    if let Some(k) = &done.slot_kept {
        st.fleet_lock = Some(k.clone());
    } else if done.slot_released {
        st.fleet_lock = None;
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

/// Whether the plan has a restart step: whenever systemd answers (a
/// stopped agent's step only says that it is left stopped).
fn restarts(before: AgentBefore) -> bool {
    // Unknown: the restart is planned, and deferred while systemd does not
    // answer (the plan stays in the journal for the next run).
    before.restart().is_some() || before == AgentBefore::Stopped || before == AgentBefore::Unknown
}

/// Whether the plan checks the new version's health: `check` is there, or
/// the agent's state is unknown now (the check then comes with the
/// deferred restart, once systemd answers).
fn verifies(config: &Config, before: AgentBefore, check: &Option<Check>) -> bool {
    check.is_some() || (before == AgentBefore::Unknown && !config.health_timeout.is_zero())
}

/// The post-update health check, unless `health-timeout` is 0 or the
/// agent was stopped before the update (the update does not start it).
fn health_check(env: &Env, config: &Config, before: AgentBefore) -> Option<Check> {
    if config.health_timeout.is_zero()
        || before == AgentBefore::Stopped
        || before == AgentBefore::Unknown
    {
        return None;
    }
    let mut timeout = config.health_timeout;
    if timeout > MAX_HEALTH_TIMEOUT {
        tracing::warn!(
            "health-timeout {} s is longer than the most the unit allows for it; waiting {} s",
            timeout.as_secs(),
            MAX_HEALTH_TIMEOUT.as_secs()
        );
        timeout = MAX_HEALTH_TIMEOUT;
    }
    Some(Check::new(
        timeout,
        before != AgentBefore::NoSystemd,
        verify::readyz_url(config.diag_addr.as_deref(), &env.system),
    ))
}

/// Finish or undo the plan an earlier run left in the journal. `dry-run`
/// only says what it would do.
fn resume(
    env: &Env,
    config: &Config,
    dry_run: bool,
    out: &mut dyn Write,
    rec: &mut LastRun,
    done: &mut Done,
) -> Result<(), AppError> {
    let path = journal::path(&env.system);
    let j = match journal::load(&path) {
        Ok(Some(j)) => j,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::warn!("{e}");
            return Ok(());
        }
    };
    let what = j.describe(&env.system);
    if dry_run {
        let _ = writeln!(out, "unfinished: an earlier run left a plan: {what}");
        dry_run::print_resume(&j, out);
        return Ok(());
    }
    tracing::warn!("an earlier run left a plan unfinished: {what}; finishing it first");
    let (backend, _) = select_backend(env, config)?;
    let backend = backend.ok_or_else(|| {
        AppError::Usage("no package manager found to finish the unfinished plan".into())
    })?;
    let pkg = backends::PkgName::parse(&j.package)
        .map_err(|e| AppError::UpdateFailed(format!("the journal names {:?}: {e}", j.package)))?;
    observe::wait_until_idle(&env.system, backend.kind(), config.lock_wait)?;
    let source = backend
        .locate_source(&pkg)
        .map_err(AppError::from_backend)?;
    let mut before: AgentBefore = j.agent_before.into();
    if before == AgentBefore::Unknown {
        // The run that made the plan could not ask systemd (its restart and
        // health check were deferred): ask again now.
        before = health::agent_before(&env.system, &env.runner);
        tracing::info!(agent = ?before, "asked systemd again about the agent the plan could not restart");
    }
    let verify = j.plan.steps.contains(&plan::Step::Verify);
    let mut ctx = Ctx {
        env,
        backend: backend.as_ref(),
        pkg,
        source,
        before,
        check: if verify {
            health_check(env, config, before)
        } else {
            None
        },
        journal_path: path,
        moved: None,
        repairing: false,
    };
    rec.package = Some(j.package.clone());
    if let plan::Goal::Update { from, to } = &j.plan.goal {
        rec.installed_before = Some(from.clone());
        rec.target = Some(to.clone());
    }
    let was_update = matches!(j.plan.goal, plan::Goal::Update { .. }) && !j.counted;
    ctx.execute(j, done)?;
    done.resumed_update = was_update;
    tracing::info!("finished the plan an earlier run left");
    Ok(())
}

fn update_inner(
    env: &Env,
    mode: Mode,
    dry_run: bool,
    out: &mut dyn Write,
    rec: &mut LastRun,
    done: &mut Done,
) -> Result<(), AppError> {
    let config = Config::load(&env.config_dir)?;
    let now = env.clock.now();
    // An invalid fleet-lock setting is a configuration error on every run,
    // not only when an update is due.
    crate::fleetlock::settings(&config)?;

    // Resume, before anything else.
    resume(env, &config, dry_run, out, rec, done).inspect_err(|_| {
        rec.decision = Some(state::Decided::Resume);
    })?;

    // Observe: what decides a stand-down first (it looks at nothing else).
    let schedule = read_schedule(&config);
    rec.schedule = Some(schedule.to_string());
    tracing::info!(schedule = %schedule, file = %config.schedule_path().display(), "read the maintenance schedule");
    let v2 = managed_by_v2(&env.system);
    if let Some(d) = stand_down(&schedule, v2.as_deref()) {
        tracing::info!(decision = d.word(), "{d}");
        rec.decision = Some((&d).into());
        rec.detail = Some(d.to_string());
        if dry_run {
            let _ = writeln!(out, "decision: {d}");
        }
        return Ok(());
    }

    let (backend, installer) = select_backend(env, &config)?;
    rec.installer = Some(match installer {
        Installer::Backend(k) => k.to_string(),
        Installer::Nop => "nop".into(),
    });
    let backend = backend.ok_or_else(|| {
        AppError::Usage(
            "installer is nop and no package manager was found to read the installed version"
                .into(),
        )
    })?;
    if !dry_run && installer != Installer::Nop {
        observe::wait_until_idle(&env.system, backend.kind(), config.lock_wait)?;
    }
    let installed = installed_agent(backend.as_ref(), &config)?;
    rec.package = Some(installed.name.to_string());
    rec.installed_before = Some(installed.version.to_string());
    tracing::info!(package = %installed.name, installed = %installed.version, installer = rec.installer.as_deref().unwrap_or(""), "found the agent package");
    let locate = || match backend.locate_source(&installed.name) {
        Ok(s) => {
            tracing::info!(source = %s.description, "found the repository that serves {}", installed.name);
            Ok(s)
        }
        Err(e) => {
            tracing::warn!(package = %installed.name, "cannot find the repository that serves the agent: {e}");
            Err(e)
        }
    };
    // The repository is needed now only when the hold is kept in it (dnf's
    // `exclude=`); apt's hold is in dpkg's database, so a no-op there asks
    // apt nothing (`apt-cache policy` costs a process and grows with the
    // package lists), and the repository is found when a plan needs it.
    let mut source = if backend.hold_needs_source() {
        Some(locate())
    } else {
        None
    };
    let package = observe::package_state(
        backend.as_ref(),
        &installed.name,
        source.as_ref().and_then(|s| s.as_ref().ok()),
        observe::Integrity {
            version: installed.version.to_string(),
            now,
            interval: config.verify_interval,
            record_clean: !dry_run,
        },
    );

    let (endpoint, insecure) = config.version_server()?;
    let client = Client::new(
        &endpoint,
        insecure,
        config
            .ca_file
            .as_ref()
            .map(|p| env.system.path(p))
            .as_deref(),
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Usage(format!("cannot start the async runtime: {e}")))?;
    let answer = rt.block_on(client.fetch())?;
    if let Some(w) = &answer.critical_warning {
        tracing::warn!("{w}");
    }
    rec.target = Some(answer.target.to_string());
    rec.critical = Some(answer.critical);
    match answer.via {
        Via::VersionFiles => {
            tracing::info!(endpoint = %endpoint, target = %answer.target, critical = answer.critical, "asked the version server")
        }
        Via::Find => {
            tracing::info!(endpoint = %endpoint, target = %answer.target, update_now = answer.critical, "the proxy's /webapi/find advertises the agent version (auto_update.agent_version; agent_auto_update counts as critical)")
        }
    }

    rec.in_window = Some(schedule.current(now).is_some());
    // Ours, or v1's `state-unhealthy` on a host migrating from the shipped
    // updater: the earlier one counts.
    let marker = match (
        crate::marker::Marker::read(&config.marker_path()),
        crate::marker::Marker::read(&state::v1_marker(&env.system)),
    ) {
        (crate::marker::Marker::Since(a), crate::marker::Marker::Since(b)) => {
            crate::marker::Marker::Since(a.min(b))
        }
        (crate::marker::Marker::Absent, m) | (m, crate::marker::Marker::Absent) => m,
    };
    let marker_seen = marker.is_present();
    let marker_present = marker.counts(now, config.unhealthy_interval);
    if marker_seen && !marker_present {
        tracing::info!(
            file = %config.marker_path().display(),
            interval_s = config.unhealthy_interval.as_secs(),
            "the unhealthy marker is younger than unhealthy-interval: this run does not count as a second observation"
        );
    }
    let service = health::service_health(&env.system, &env.runner);
    let service_unhealthy = service.unhealthy();
    let schedule_unhealthy = schedule.unhealthy_reason(now);
    rec.unhealthy = schedule_unhealthy.clone().or(service_unhealthy.clone());
    tracing::info!(
        marker = marker_present,
        schedule = schedule_unhealthy.as_deref().unwrap_or("healthy"),
        service = %service,
        "checked the agent's health"
    );

    let observed = Observed {
        mode,
        now,
        target: answer.target.clone(),
        critical: answer.critical,
        schedule,
        service_unhealthy,
        marker_present,
        installed: installed.version.clone(),
        failed_target: state::load(&state::path(&env.system))
            .failed_target
            .map(|f| f.version),
        v2,
        package,
        window_margin: config.window_margin.as_secs() as i64,
    };

    // Decide.
    let outcome = decide(&observed);
    let d = &outcome.decision;
    rec.decision = Some(d.into());
    rec.detail = Some(d.to_string());
    tracing::info!(decision = d.word(), installed = %installed.version, target = %answer.target, "{d}");
    if let Some(dmg) = &outcome.repairs.damaged {
        tracing::warn!(package = %installed.name, "the installed package's executables do not verify: {dmg}; reinstalling {}", installed.version);
        rec.decision = Some(state::Decided::Repair);
        rec.detail = Some(format!("repair: {dmg}"));
    }
    for r in outcome.repairs.describe() {
        tracing::info!(package = %installed.name, "repair: {r}");
    }
    if dry_run {
        let _ = writeln!(out, "package:   {} ({})", installed.name, backend.kind());
        let _ = writeln!(out, "installed: {}", installed.version);
        let _ = writeln!(
            out,
            "target:    {} (critical: {})",
            answer.target,
            if answer.critical { "yes" } else { "no" }
        );
        let _ = writeln!(out, "decision:  {d}");
        for r in outcome.repairs.describe() {
            let _ = writeln!(out, "repair:    {r}");
        }
    } else {
        if outcome.marker_after {
            tracing::info!(file = %config.marker_path().display(), "marking the agent unhealthy for the next run");
        }
        set_marker(env, &config, outcome.marker_after, now);
        if outcome.marker_after && !marker_seen {
            // The first unhealthy sighting: the second comes minutes later.
            health::arrange_recheck(&env.system, &env.runner, config.recheck_delay);
        }
        if *d == crate::decision::Decision::UpToDate && outcome.repairs.is_empty() {
            release_kept_slot(env, &config, rec.unhealthy.is_some(), done);
        }
    }

    // The cluster-compatibility guard, before anything is planned (its
    // verdict is recorded for `status` whatever the decision; it refuses
    // only an update).
    if let Target::Version(t) = &answer.target {
        let learned = crate::cluster::learn(
            &env.system,
            &endpoint,
            insecure,
            &client,
            &rt,
            answer.find_body.as_deref(),
        );
        let v = crate::cluster::verdict(t, learned.as_ref().map_err(String::as_str));
        rec.cluster_version = v.cluster().map(|c| c.to_string());
        rec.cluster_guard = Some(v.to_string());
        if dry_run {
            let _ = writeln!(
                out,
                "cluster:   {} ({v}; cluster-guard {})",
                v.cluster()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                config.cluster_guard.word()
            );
        }
        match v.refusal(config.cluster_guard) {
            Some(r) if d.is_update() => return Err(AppError::Refused(r)),
            _ if matches!(v, crate::cluster::Verdict::Unknown(_)) && d.is_update() => {
                tracing::warn!(
                    cluster_guard = config.cluster_guard.word(),
                    "{v}; proceeding"
                )
            }
            _ if matches!(v, crate::cluster::Verdict::Unknown(_)) => {
                tracing::info!(cluster_guard = config.cluster_guard.word(), "{v}")
            }
            _ => tracing::info!(cluster = ?v.cluster().map(|c| c.to_string()), "{v}"),
        }
    }

    // Plan.
    let target = match (&answer.target, d.is_update()) {
        (Target::Version(t), true) => Some(t),
        _ => None,
    };
    if target.is_none() && outcome.repairs.is_empty() {
        return Ok(());
    }
    let source = source
        .take()
        .unwrap_or_else(locate)
        .map_err(AppError::from_backend)?;
    let source = finish_interrupted_move(backend.as_ref(), source, dry_run, out)?;
    let before = health::agent_before(&env.system, &env.runner);
    let mut channel_line = None;
    let (plan, check) = match target {
        Some(t) => {
            let planned = backend
                .plan_channel_move(&source, t.major())
                .map_err(AppError::from_backend)?;
            channel_line = planned.as_ref().map(|m| {
                format!(
                    "when {} does not offer the target, would edit {m} (backup {})",
                    m.from,
                    env.system.display_path(&m.backup)
                )
            });
            let channel_to = planned.map(|_| t.major());
            let check = health_check(env, &config, before);
            let facts = Facts {
                restart: restarts(before),
                verify: verifies(&config, before, &check),
                channel_to,
            };
            let mut plan = Plan::update(
                installed.version.as_str(),
                &t.package_version().to_string(),
                facts,
            );
            if let crate::decision::Decision::Update { reason } = d {
                match health::may_reload(config.restart_mode, before, reason) {
                    Ok(()) => plan = plan.reload_instead_of_restart(),
                    Err(why) if facts.restart => {
                        tracing::info!(
                            "restarting the agent after the update, not reloading it: {why}"
                        )
                    }
                    Err(_) => {}
                }
            }
            (plan, check)
        }
        None => {
            let facts = Facts {
                restart: restarts(before),
                verify: false,
                channel_to: None,
            };
            (
                Plan::repair(installed.version.as_str(), &outcome.repairs, facts)
                    .expect("repairs make a plan"),
                None,
            )
        }
    };
    // FleetLock: a non-critical update runs under a slot.
    let plan = match (target, &d) {
        (Some(_), crate::decision::Decision::Update { reason }) => {
            with_fleet_lock(env, &config, reason, plan)?
        }
        _ => plan,
    };
    // The trust audit, before anything is downloaded.
    let downloads = plan.steps.contains(&plan::Step::Refresh);
    let audited = if downloads {
        Some(audit(env, backend.as_ref(), &source, &config, now))
    } else {
        None
    };
    if let Some(Ok(a)) = &audited {
        for w in &a.warnings {
            tracing::warn!("{w}");
        }
    }
    if dry_run {
        dry_run::print_plan(
            &dry_run::View {
                backend: backend.as_ref(),
                source: &source,
                installed: &installed,
                before,
                check: check.as_ref(),
                audit: audited.as_ref(),
                nop: installer == Installer::Nop,
                channel: channel_line,
            },
            &plan,
            out,
        );
        if let Some(a) = audited {
            a?;
        }
        return Ok(());
    }
    if let Some(a) = audited {
        for c in &a?.checked {
            tracing::info!("trust: {c}");
        }
    }
    if installer == Installer::Nop {
        tracing::info!("installer is nop: not changing {}", installed.name);
        return Ok(());
    }

    // Server-supplied jitter, for a routine update only.
    if let (
        Some(j),
        crate::decision::Decision::Update {
            reason: crate::decision::UpdateReason::InWindow { .. },
        },
    ) = (
        answer.find_body.as_deref().and_then(jitter::jitter_seconds),
        d,
    ) {
        let wait = jitter::delay(j, jitter::random());
        tracing::info!(
            "waiting {} s before updating: the proxy asks for a random delay up to {j} s (agent_update_jitter_seconds; at most {} s here)",
            wait.as_secs(),
            jitter::MAX_JITTER.as_secs()
        );
        jitter::wait(env.clock, wait).map_err(|sig| {
            AppError::Interrupted(format!(
                "{sig} received during the jitter wait; nothing changed"
            ))
        })?;
    }

    // Execute.
    execute_plan(
        env,
        backend.as_ref(),
        &installed,
        source,
        before,
        check,
        plan,
        rec,
        done,
    )
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
    match client
        .map_err(|e| e.to_string())
        .and_then(|c| c.release().map_err(|e| e.to_string()))
    {
        Ok(()) => {
            tracing::info!(group = %k.group, id = %k.id, "the agent is healthy at the target: gave back the FleetLock slot kept since the rollback ({})", k.why);
            done.slot_released = true;
        }
        Err(e) => {
            tracing::warn!(group = %k.group, "cannot give back the FleetLock slot kept since the rollback: {e}; the next run tries again")
        }
    }
}

/// The update's plan under a FleetLock slot, when `fleet-lock` is set and
/// the update is neither critical nor forced (those ignore the lock, said
/// in the log).
fn with_fleet_lock(
    env: &Env,
    config: &Config,
    reason: &crate::decision::UpdateReason,
    plan: Plan,
) -> Result<Plan, AppError> {
    use crate::decision::UpdateReason as R;
    let Some(s) = crate::fleetlock::settings(config)? else {
        return Ok(plan);
    };
    match reason {
        R::Critical => {
            tracing::warn!(group = %s.group, "the update is critical: not taking a FleetLock slot");
            return Ok(plan);
        }
        R::Forced => {
            tracing::warn!(group = %s.group, "the update is forced: not taking a FleetLock slot");
            return Ok(plan);
        }
        R::InWindow { .. } | R::Unhealthy { .. } => {}
    }
    let file = env.system.path(crate::fleetlock::id::MACHINE_ID_FILE);
    let id = crate::fleetlock::id::host_id(&file).map_err(|message| AppError::Config {
        file: file.clone(),
        message: format!("the FleetLock host id comes from it: {message}"),
    })?;
    Ok(plan.with_slot(&s.group, &id))
}

#[allow(clippy::too_many_arguments)]
fn execute_plan(
    env: &Env,
    backend: &dyn Backend,
    installed: &Installed,
    source: Source,
    before: AgentBefore,
    check: Option<Check>,
    plan: Plan,
    rec: &mut LastRun,
    done: &mut Done,
) -> Result<(), AppError> {
    let j = Journal::new(
        env.clock.now(),
        &rec.command,
        installed.name.as_str(),
        before.into(),
        plan,
    );
    let mut ctx = Ctx {
        env,
        backend,
        pkg: installed.name.clone(),
        source,
        before,
        check,
        journal_path: journal::path(&env.system),
        moved: None,
        repairing: false,
    };
    ctx.execute(j, done)?;
    let d = done;
    if before == AgentBefore::Unknown && d.installed_after.is_some() {
        tracing::warn!(
            "the agent's health is unknown (systemd does not answer): the update is not verified"
        );
        d.unverified = true;
    }
    if d.unverified {
        rec.detail = Some(format!(
            "{} (the agent's health could not be verified{})",
            rec.detail.clone().unwrap_or_default(),
            if d.deferred {
                "; its restart and health check are left in the plan for the next run"
            } else {
                ""
            }
        ));
    }
    if let Some(v) = &d.installed_after {
        tracing::info!(package = %installed.name, from = %installed.version, to = %v, "the agent package is at {v} and held");
    }
    Ok(())
}

/// A channel move that an earlier run left unfinished (it was killed
/// between editing the repository definition and keeping or undoing the
/// edit: the backup is still there, and no journal says what to do) is
/// undone first, so this run starts from the operator's file and moves the
/// channel again only if its target needs it. A file edited since that
/// move is left as it is, with its backup, and a warning.
fn finish_interrupted_move(
    backend: &dyn Backend,
    source: Source,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<Source, AppError> {
    use backends::channel::Interrupted;
    match backend
        .interrupted_channel_move(&source)
        .map_err(AppError::from_backend)?
    {
        None => Ok(source),
        Some(Interrupted::Undo(m)) if dry_run => {
            let _ = writeln!(
                out,
                "recover:   an earlier run left a channel move unfinished ({}): would restore {} from {}",
                m.describe(),
                m.file.display(),
                backend.system().display_path(&m.backup)
            );
            Ok(source)
        }
        Some(Interrupted::Undo(m)) => {
            m.restore()
                .and_then(|()| m.remove_backup())
                .map_err(AppError::from_backend)?;
            tracing::warn!(file = %m.file.display(), "an earlier run stopped in the middle of a channel move ({}): restored {} from {}", m.describe(), m.file.display(), backend.system().display_path(&m.backup));
            backend
                .reload_source(&source)
                .map_err(AppError::from_backend)
        }
        Some(Interrupted::Edited { file, backup }) => {
            let msg = format!("{} is left from an unfinished channel move, but {} was edited since: both are left as they are; remove the backup once the definition is right", backend.system().display_path(&backup), file.display());
            tracing::warn!("{msg}");
            if dry_run {
                let _ = writeln!(out, "recover:   {msg}");
            }
            Ok(source)
        }
    }
}
