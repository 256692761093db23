//! `teleport-upgrade status`: what the updater sees now and what its last
//! run did. Reads only; never contacts the version server.

use std::io::Write;

use serde::Serialize;

use crate::config::Config;
use crate::error::{AppError, Exit};
use crate::health;
use crate::lock;
use crate::run::{audit, installed_agent, read_schedule, select_backend, Audit, Env};
use crate::schedule::{rfc3339, Window};
use crate::state::{self, LastRun};

#[derive(Debug, Serialize)]
pub struct WindowView {
    pub start: i64,
    pub stop: i64,
    pub start_utc: String,
    pub stop_utc: String,
    /// The same instants in the host's local time zone (RFC 3339 with its
    /// offset; UTC when the offset cannot be determined).
    pub start_local: String,
    pub stop_local: String,
}

/// The host's UTC offset, read once (the process is single-threaded here).
fn local_offset() -> time::UtcOffset {
    time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC)
}

fn local(t: i64, offset: time::UtcOffset) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(|d| d.to_offset(offset))
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

impl WindowView {
    fn new(w: Window, offset: time::UtcOffset) -> Self {
        WindowView {
            start: w.start,
            stop: w.stop,
            start_utc: rfc3339(w.start),
            stop_utc: rfc3339(w.stop),
            start_local: local(w.start, offset),
            stop_local: local(w.stop, offset),
        }
    }
}

/// The health signals, each on its own.
#[derive(Debug, Serialize)]
pub struct HealthView {
    /// Why the schedule file says the agent is unhealthy (empty or stale).
    pub schedule: Option<String>,
    /// Why systemd says the agent's unit is unhealthy.
    pub service: Option<String>,
    /// The last run marked the agent unhealthy (one more unhealthy run
    /// updates outside the window).
    pub marker: bool,
    /// The agent's service as systemd reports it: `no-systemd`, its
    /// `is-active` word, or `unknown` (systemd present but not answering;
    /// never counted as healthy).
    pub service_state: String,
}

/// The preflight trust audit, as a run would do it now.
#[derive(Debug, Serialize)]
pub struct TrustView {
    /// `ok` or `refused`.
    pub result: String,
    pub checked: Vec<String>,
    pub warnings: Vec<String>,
    pub refused: Option<String>,
    pub pinned_key_expires: Option<i64>,
    pub pinned_key_expires_utc: Option<String>,
}

/// The `status --json` document (schema 1).
#[derive(Debug, Serialize)]
pub struct Status {
    pub schema: u32,
    pub updater_version: &'static str,
    pub config_dir: String,
    pub endpoint: Option<String>,
    pub installer: Option<String>,
    pub package: Option<String>,
    pub installed: Option<String>,
    /// From the last run (status does not ask the version server).
    pub target: Option<String>,
    pub critical: Option<bool>,
    /// The cluster's version, from the last run's cluster-compatibility
    /// guard.
    pub cluster_version: Option<String>,
    /// The guard's verdict on the last run's target.
    pub cluster_guard: Option<String>,
    /// The update group the last run asked for and what the cluster said.
    pub update_group: Option<crate::update_group::GroupAnswer>,
    pub schedule: String,
    pub window_current: Option<WindowView>,
    pub window_next: Option<WindowView>,
    /// The first unhealthy signal (schedule, else service), as before.
    pub unhealthy: Option<String>,
    pub unhealthy_marker: bool,
    pub health: HealthView,
    /// Managed Updates v2's configuration file, when v2 manages the agent
    /// (then every run stands down).
    pub managed_by_v2: Option<String>,
    /// The repository definition that serves the agent.
    pub source: Option<String>,
    /// A channel move an earlier run left unfinished (its backup is still
    /// beside the repository definition), and what the next update does.
    pub channel_move_unfinished: Option<String>,
    /// A plan an earlier run left unfinished (its journal), which the next
    /// run finishes or undoes before anything else.
    pub unfinished_plan: Option<String>,
    /// Whether the agent package is held (apt hold, dnf versionlock or
    /// exclude, zypper lock); `None` when it cannot be read.
    pub held: Option<bool>,
    pub trust: Option<TrustView>,
    pub lock_holder: Option<u32>,
    /// `free`, `held` (by `lock_holder` when known) or `unknown: <why>`
    /// (e.g. run by a user who cannot read the root-only lock directory).
    pub lock: String,
    pub last_run: Option<LastRun>,
    pub last_success: Option<i64>,
    pub last_update: Option<i64>,
    /// The last run the version server answered.
    pub last_check: Option<i64>,
    pub updates_total: u64,
    pub rollbacks_total: u64,
    /// Rollbacks of updates made while the agent was unhealthy.
    pub uncured_total: u64,
    /// Runs that did not end with exit 0, by result.
    pub failures: std::collections::BTreeMap<String, u64>,
    /// The FleetLock slot this host keeps after a rolled-back update (the
    /// rollout halts once every slot of the group is kept); none is kept.
    pub fleet_lock: Option<crate::fleetlock::Kept>,
    /// The fleet's record of the target as the last run that read or wrote
    /// it saw it (`fleet-report`), and whether it halted on it.
    pub fleet_rollout: Option<state::Rollout>,
    /// Runs that took no slot because the rollout was halted.
    pub rollout_halts_total: u64,
    /// A target below the installed version seen by a check and not
    /// installed yet (no flapping: a second check must confirm it).
    pub lower_target: Option<crate::decision::LowerSeen>,
    /// Checks whose answer contradicted the lower target an earlier check
    /// saw, and the last of them.
    pub disagreements_total: u64,
    pub last_disagreement: Option<state::Disagreement>,
    /// The target the repository does not offer yet, since when, and how
    /// many runs found a target not offered.
    pub mirror_wait: Option<state::MirrorWait>,
    pub mirror_waits_total: u64,
    /// What could not be read.
    pub problems: Vec<String>,
}

/// What `status` shows of the agent's repository: its description, an
/// unfinished channel move, the hold, the trust audit.
type SourceView = (
    Option<String>,
    Option<String>,
    Option<bool>,
    Option<TrustView>,
);

fn source_view(
    env: &Env,
    config: &Config,
    b: &dyn backends::Backend,
    i: &backends::Installed,
    now: i64,
    problems: &mut Vec<String>,
) -> Option<SourceView> {
    let src = b
        .locate_source(&i.name)
        .map_err(|e| problems.push(e.to_string()))
        .ok()?;
    let unfinished = unfinished_move(b, &src, problems);
    let held = match b.is_held(&src, &i.name) {
        Ok(h) => Some(h),
        Err(e) => {
            problems.push(format!("cannot tell whether {} is held: {e}", i.name));
            None
        }
    };
    let trust = trust_view(audit(env, b, &src, config, now).map(|t| t.audit().clone()));
    Some((Some(src.description.clone()), unfinished, held, Some(trust)))
}

/// A warning when the version server has not answered for over a day
/// although runs were made (a long outage is otherwise silent).
fn stale_check(st: &state::State, now: i64) -> Option<String> {
    const DAY: i64 = 86_400;
    let last_run = st.last_run.as_ref()?.time;
    let since = st.last_check.unwrap_or(0);
    (last_run - since > DAY && now - since > DAY).then(|| match st.last_check {
        Some(t) => format!(
            "the version server has not answered for {} hours (last answer {}): no update can be learned",
            (now - t) / 3600,
            rfc3339(t)
        ),
        None => "the version server has never answered a run here: no update can be learned".into(),
    })
}

pub fn gather(env: &Env) -> Result<Status, AppError> {
    let config = Config::load(&env.config_dir)?;
    let now = env.clock.now();
    let mut problems = Vec::new();
    let schedule = read_schedule(&config);
    let mut source = None;
    let mut unfinished = None;
    let mut trust = None;
    let mut held = None;
    let (installer, package, installed) = match select_backend(env, &config) {
        Ok((Some(b), inst)) => {
            let inst_name = match inst {
                crate::config::Installer::Nop => "nop".to_string(),
                crate::config::Installer::Backend(k) => k.to_string(),
            };
            match installed_agent(b.as_ref(), &config) {
                Ok(i) => {
                    if let Some(v) = source_view(env, &config, b.as_ref(), &i, now, &mut problems) {
                        (source, unfinished, held, trust) = v;
                    }
                    (
                        Some(inst_name),
                        Some(i.name.to_string()),
                        Some(i.version.to_string()),
                    )
                }
                Err(e) => {
                    problems.push(e.to_string());
                    (
                        Some(inst_name),
                        config.package.as_ref().map(|p| p.to_string()),
                        None,
                    )
                }
            }
        }
        Ok((None, _)) => (Some("nop".into()), None, None),
        Err(e) => {
            problems.push(e.to_string());
            (None, None, None)
        }
    };
    let (lock_holder, lock_word) = lock_view(&lock::state(&lock::path(&env.system)));
    let (st, state_problem) = state::peek(&state::path(&env.system));
    problems.extend(state_problem);
    problems.extend(stale_check(&st, now));
    let last = st.last_run.clone();
    let offset = local_offset();
    let schedule_health = schedule.unhealthy_reason(now);
    let service = health::service_health(&env.system, &env.runner);
    let service_health = service.unhealthy();
    let unfinished_plan =
        match crate::update::journal::peek(&crate::update::journal::path(&env.system)) {
            Ok(j) => j.map(|j| {
                let slot = j.slot_taken().map_or(String::new(), |(group, id)| {
                    format!("; it holds a FleetLock slot of group {group} (as {id}), given back when the plan ends or is abandoned")
                });
                format!(
                    "{}{slot}; the next run continues it only if a fresh run would make the same update now, and abandons it otherwise (dry-run says which)",
                    j.describe(&env.system)
                )
            }),
            Err(e) => {
                problems.push(e);
                None
            }
        };
    let marker = crate::marker::Marker::read(&config.marker_path()).is_present()
        || crate::marker::Marker::read(&state::v1_marker(&env.system)).is_present();
    Ok(Status {
        schema: 1,
        updater_version: env!("CARGO_PKG_VERSION"),
        config_dir: env.system.display_path(&config.dir),
        endpoint: config.endpoint.as_ref().map(|e| e.to_string()),
        installer,
        package,
        installed,
        target: last.as_ref().and_then(|l| l.target.clone()),
        critical: last.as_ref().and_then(|l| l.critical),
        cluster_version: last.as_ref().and_then(|l| l.cluster_version.clone()),
        cluster_guard: last.as_ref().and_then(|l| l.cluster_guard.clone()),
        update_group: last.as_ref().and_then(|l| l.update_group.clone()),
        schedule: schedule.to_string(),
        window_current: schedule.current(now).map(|w| WindowView::new(w, offset)),
        window_next: schedule.next(now).map(|w| WindowView::new(w, offset)),
        unhealthy: schedule_health.clone().or_else(|| service_health.clone()),
        unhealthy_marker: marker,
        health: HealthView {
            schedule: schedule_health,
            service: service_health,
            marker,
            service_state: service.word(),
        },
        managed_by_v2: crate::run::managed_by_v2(&env.system),
        source,
        channel_move_unfinished: unfinished,
        unfinished_plan,
        held,
        trust,
        lock_holder,
        lock: lock_word,
        last_run: last,
        last_success: st.last_success,
        last_update: st.last_update,
        last_check: st.last_check,
        updates_total: st.updates_total,
        rollbacks_total: st.rollbacks_total,
        uncured_total: st.uncured_total,
        failures: st.failures.clone(),
        fleet_lock: st.fleet_lock.clone(),
        fleet_rollout: st.fleet_rollout.clone(),
        rollout_halts_total: st.rollout_halts_total,
        lower_target: st.lower_target.clone(),
        disagreements_total: st.disagreements_total,
        last_disagreement: st.last_disagreement.clone(),
        mirror_wait: st.mirror_wait.clone(),
        mirror_waits_total: st.mirror_waits_total,
        problems,
    })
}

/// The run lock: its holder's pid when known, and `free`, `held` or
/// `unknown: <why>`.
fn lock_view(l: &lock::LockState) -> (Option<u32>, String) {
    match l {
        lock::LockState::Free => (None, "free".into()),
        lock::LockState::Held(p) => (*p, "held".into()),
        lock::LockState::Unknown(why) => (None, format!("unknown: {why}")),
    }
}

fn unfinished_move(
    b: &dyn backends::Backend,
    src: &backends::Source,
    problems: &mut Vec<String>,
) -> Option<String> {
    use backends::channel::Interrupted;
    match b.interrupted_channel_move(src) {
        Ok(None) => None,
        Ok(Some(Interrupted::Undo(m))) => Some(format!(
            "{} (backup {}): the next update restores the file, then moves again only if its target needs it",
            m.describe(),
            b.system().display_path(&m.backup)
        )),
        Ok(Some(Interrupted::Edited { file, backup })) => Some(format!(
            "{} is left, but {} was edited since: remove the backup once the definition is right",
            b.system().display_path(&backup),
            file.display()
        )),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    }
}

fn trust_view(a: Result<Audit, AppError>) -> TrustView {
    match a {
        Ok(a) => TrustView {
            result: "ok".into(),
            checked: a.checked,
            warnings: a.warnings,
            refused: None,
            pinned_key_expires: a.pinned_key_expires,
            pinned_key_expires_utc: a.pinned_key_expires.map(rfc3339),
        },
        Err(e) => TrustView {
            result: "refused".into(),
            checked: Vec::new(),
            warnings: Vec::new(),
            refused: Some(e.to_string()),
            pinned_key_expires: None,
            pinned_key_expires_utc: None,
        },
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

pub fn print_human(s: &Status, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "teleport-upgrade {} (config {})",
        s.updater_version, s.config_dir
    )?;
    writeln!(out, "  endpoint:    {}", opt(&s.endpoint))?;
    writeln!(
        out,
        "  package:     {} via {}",
        opt(&s.package),
        opt(&s.installer)
    )?;
    writeln!(out, "  installed:   {}", opt(&s.installed))?;
    writeln!(
        out,
        "  target:      {}{} (as of the last run)",
        opt(&s.target),
        match s.critical {
            Some(true) => ", critical",
            _ => "",
        }
    )?;
    if let Some(l) = &s.lower_target {
        writeln!(
            out,
            "  lower:       {} (below the installed version) advertised since {}: installed once a check unhealthy-interval later still advertises it",
            l.version,
            rfc3339(l.since)
        )?;
    }
    if let Some(w) = &s.mirror_wait {
        writeln!(
            out,
            "  mirror:      {} not offered by the repository since {}: waiting for the mirror (a run fails once mirror-wait has passed)",
            w.target,
            rfc3339(w.since)
        )?;
    }
    if let Some(d) = &s.last_disagreement {
        writeln!(
            out,
            "  disagree:    {} (at {}; {} in all)",
            d.what,
            rfc3339(d.time),
            s.disagreements_total
        )?;
    }
    if let Some(g) = &s.cluster_guard {
        writeln!(
            out,
            "  cluster:     {} ({g}; as of the last run)",
            opt(&s.cluster_version)
        )?;
    }
    if let Some(g) = &s.update_group {
        writeln!(out, "  group:       {}", g.describe())?;
    }
    writeln!(out, "  schedule:    {}", s.schedule)?;
    match &s.window_current {
        Some(w) => writeln!(
            out,
            "  window:      NOW, until {} (local {})",
            w.stop_utc, w.stop_local
        )?,
        None => writeln!(out, "  window:      not in a window")?,
    }
    if let Some(w) = &s.window_next {
        writeln!(
            out,
            "  next window: {} .. {} (local {} .. {})",
            w.start_utc, w.stop_utc, w.start_local, w.stop_local
        )?;
    }
    writeln!(
        out,
        "  health:      {}{}",
        s.unhealthy
            .as_deref()
            .unwrap_or(if s.health.service_state == "unknown" {
                "unknown (systemd does not answer)"
            } else {
                "healthy"
            }),
        if s.unhealthy_marker {
            " (marked unhealthy by the last run)"
        } else {
            ""
        }
    )?;
    if let Some(f) = &s.managed_by_v2 {
        writeln!(
            out,
            "  v2:          Managed Updates v2 manages this host ({f}): every run stands down"
        )?;
    }
    if let Some(src) = &s.source {
        writeln!(out, "  source:      {src}")?;
    }
    if let Some(p) = &s.unfinished_plan {
        writeln!(out, "  unfinished:  plan {p}")?;
    }
    if let Some(h) = s.held {
        writeln!(
            out,
            "  held:        {}",
            if h {
                "yes"
            } else {
                "NO: routine upgrades can move the agent (the next run holds it)"
            }
        )?;
    }
    if let Some(m) = &s.channel_move_unfinished {
        writeln!(out, "  unfinished:  channel move {m}")?;
    }
    print_tail(s, out)
}

/// The second half of the human report: lock, trust, last run, totals.
fn print_tail(s: &Status, out: &mut dyn Write) -> std::io::Result<()> {
    if let Some(k) = &s.fleet_lock {
        writeln!(
            out,
            "  fleet lock:  KEEPS a slot of group {} (as {}) since {}: {}; free it on the lock server once the release is fixed",
            k.group,
            k.id,
            crate::schedule::rfc3339(k.since),
            k.why
        )?;
    }
    if let Some(r) = &s.fleet_rollout {
        writeln!(
            out,
            "  rollout:     {}",
            rollout_line(r, s.rollout_halts_total)
        )?;
    }
    if let Some(t) = &s.trust {
        match &t.refused {
            None => writeln!(out, "  trust:       ok ({})", t.checked.join("; "))?,
            Some(r) => writeln!(out, "  trust:       REFUSED: {r}")?,
        }
        for w in &t.warnings {
            writeln!(out, "  warning:     {w}")?;
        }
    }
    match (s.lock.as_str(), s.lock_holder) {
        ("held", Some(p)) => writeln!(out, "  lock:        held by pid {p}")?,
        ("held", None) => writeln!(out, "  lock:        held (holder not known)")?,
        (other, _) => writeln!(out, "  lock:        {other}")?,
    }
    match &s.last_run {
        Some(l) => {
            writeln!(
                out,
                "  last run:    {} `{}`: {} -> {} (exit {})",
                rfc3339(l.time),
                l.command,
                l.decision.as_ref().map_or("no decision", |d| d.as_str()),
                l.result,
                l.exit_code
            )?;
            if let Some(d) = &l.detail {
                writeln!(out, "               {d}")?;
            }
            if let Some(e) = &l.error {
                writeln!(out, "               error: {e}")?;
            }
            if let Some(a) = &l.abandoned {
                writeln!(out, "               abandoned: {a}")?;
            }
        }
        None => writeln!(out, "  last run:    never")?,
    }
    if let Some(t) = s.last_success {
        writeln!(out, "  last success: {}", rfc3339(t))?;
    }
    if let Some(t) = s.last_check {
        writeln!(
            out,
            "  last check:  {} (the version server answered)",
            rfc3339(t)
        )?;
    }
    if let Some(t) = s.last_update {
        writeln!(out, "  last update: {}", rfc3339(t))?;
    }
    writeln!(
        out,
        "  totals:      {} update(s), {} rollback(s) ({} did not cure an unhealthy agent), {} failed run(s)",
        s.updates_total,
        s.rollbacks_total,
        s.uncured_total,
        s.failures.values().sum::<u64>()
    )?;
    for p in &s.problems {
        writeln!(out, "  problem:     {p}")?;
    }
    Ok(())
}

/// The fleet's record of the target, as the last run saw it.
fn rollout_line(r: &state::Rollout, halts: u64) -> String {
    let total = r.ok + r.failed;
    let seen = format!(
        "group {} target {}: {} completed, {} failed ({} %) at {}",
        r.group,
        r.target,
        total,
        r.failed,
        crate::fleetlock::report::rate_text((r.failed * 1000 / total.max(1)) as u32),
        rfc3339(r.time)
    );
    match (&r.error, r.halted) {
        (Some(e), _) => format!(
            "the fleet's record could not be read or written ({e}): no failure-rate halt, the slot count alone bounds the rollout"
        ),
        (None, true) => format!(
            "HALTED, {seen}: more than fleet-halt-rate {} % (after {} completed); no slot is taken for it ({halts} halted run(s)); publish a fixed release or reset the record",
            r.halt_rate, r.min_sample
        ),
        (None, false) => format!(
            "{seen}; halts above {} % once {} completed",
            r.halt_rate, r.min_sample
        ),
    }
}

pub fn status_command(env: &Env, json: bool, out: &mut dyn Write) -> Exit {
    match gather(env) {
        Ok(s) => {
            let r = if json {
                serde_json::to_writer_pretty(&mut *out, &s)
                    .map_err(std::io::Error::other)
                    .and_then(|_| writeln!(out))
            } else {
                print_human(&s, out)
            };
            match r {
                Ok(()) => Exit::Ok,
                Err(_) => Exit::Usage,
            }
        }
        Err(e) => {
            tracing::error!("{e}");
            e.exit()
        }
    }
}

#[cfg(test)]
mod stale_tests {
    use super::*;

    #[test]
    fn a_version_server_silent_for_a_day_is_a_problem() {
        let now = 1_800_000_000;
        let mut st = state::State::default();
        assert_eq!(stale_check(&st, now), None, "no run yet");
        st.last_run = Some(state::LastRun {
            time: now - 60,
            ..Default::default()
        });
        st.last_check = Some(now - 3600);
        assert_eq!(stale_check(&st, now), None, "answered an hour ago");
        st.last_check = Some(now - 90_000);
        let p = stale_check(&st, now).unwrap();
        assert!(p.contains("25 hours"), "{p}");
        st.last_check = None;
        assert!(stale_check(&st, now).unwrap().contains("never answered"));
    }
}
