//! Orchestration of one `run`, `force` or `dry-run`: observe, decide (pure),
//! then act through the backend. Every step logs one line saying what was
//! observed and why.

use std::io::Write;
use std::path::PathBuf;

use backends::{Backend, Installed, Options, PkgName, Runner, System};

use crate::client::{Client, Via};
use crate::config::{Config, Installer, AGENT_PACKAGES};
use crate::decision::{decide, Decision, Mode, Observed};
use crate::error::{AppError, Exit};
use crate::health::{self, AgentBefore, Clock};
use crate::schedule::Schedule;
use crate::state::{self, LastRun};
use crate::verify::{self, Check, Verdict};
use crate::{lock, metrics, pinning, target::Target};

/// What a command needs from the outside world.
pub struct Env<'a> {
    pub system: System,
    pub config_dir: PathBuf,
    pub clock: &'a dyn Clock,
    pub runner: Runner,
}

/// Read the schedule file: a missing file is `Missing`, an unreadable one
/// `Unparseable`.
pub fn read_schedule(config: &Config) -> Schedule {
    match crate::fsread::read_text(&config.schedule_path(), crate::fsread::CONFIG_CAP) {
        Ok(Some(t)) => {
            let (schedule, warnings) = Schedule::parse_with_warnings(&t);
            for w in warnings {
                tracing::warn!(file = %config.schedule_path().display(), "{w}");
            }
            schedule
        }
        Ok(None) => Schedule::Missing,
        Err(e) => Schedule::Unparseable(e.to_string()),
    }
}

/// Managed Updates v2's configuration for the default agent.
pub const V2_CONFIG: &str = "/opt/teleport/default/update.yaml";

/// The v2 configuration file (as the target sees it) when `teleport-update`
/// manages the agent: the file exists and does not say `enabled: false`.
pub fn managed_by_v2(system: &System) -> Option<String> {
    let text = crate::fsread::read_text(&system.path(V2_CONFIG), crate::fsread::CONFIG_CAP)
        .ok()
        .flatten()?;
    let disabled = text.lines().any(|l| {
        let l = l.trim();
        l.strip_prefix("enabled:")
            .is_some_and(|v| v.trim().trim_matches('"') == "false")
    });
    (!disabled).then(|| V2_CONFIG.to_string())
}

/// The backend named by `installer`, or detected; `None` for `nop` when no
/// package manager can be found for read-only queries.
pub fn select_backend(
    env: &Env,
    config: &Config,
) -> Result<(Option<Box<dyn Backend>>, Installer), AppError> {
    let opts = Options {
        lock_wait: config.lock_wait,
        source_file: config.source_file.clone(),
        ..Options::default()
    };
    let build = |k| {
        backends::backend_for(k, env.system.clone(), opts.clone()).map_err(AppError::from_backend)
    };
    match config.installer {
        Some(Installer::Backend(k)) => Ok((Some(build(k)?), Installer::Backend(k))),
        Some(Installer::Nop) => {
            let b = backends::detect(&env.system, &env.runner)
                .ok()
                .and_then(|k| build(k).ok());
            Ok((b, Installer::Nop))
        }
        None => {
            let k = backends::detect(&env.system, &env.runner)
                .map_err(|e| AppError::Usage(e.to_string()))?;
            tracing::debug!(installer = %k, "detected the package manager");
            Ok((Some(build(k)?), Installer::Backend(k)))
        }
    }
}

/// The agent package and its installed version.
pub fn installed_agent(backend: &dyn Backend, config: &Config) -> Result<Installed, AppError> {
    let candidates: Vec<PkgName> = match &config.package {
        Some(p) => vec![p.clone()],
        None => AGENT_PACKAGES
            .iter()
            .map(|n| PkgName::parse(n).unwrap())
            .collect(),
    };
    backend
        .first_installed(&candidates)
        .map_err(AppError::from_backend)?
        .ok_or_else(|| {
            AppError::Usage(format!(
                "no Teleport agent package is installed (looked for {}); install the agent first, or name it in {}",
                candidates.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
                config.dir.join("package").display()
            ))
        })
}

/// The integrity check of the installed agent's executables, cheap when
/// nothing changed: a full verification (`dpkg --verify` / `rpm -V`, which
/// hashes every file) only when a `stat` of the executables differs from
/// the record of the last full verification, when there is no record, or
/// when that verification is older than `verify-interval` (see
/// `integrity_cache`). A clean full verification is recorded.
fn verified_executables(
    env: &Env,
    backend: &dyn Backend,
    config: &Config,
    installed: &Installed,
    now: i64,
    dry_run: bool,
) -> Result<Vec<backends::integrity::FileProblem>, AppError> {
    use crate::integrity_cache::{check, Verdict};
    let (pkg, ver) = (installed.name.as_str(), installed.version.to_string());
    match check(&env.system, pkg, &ver, now, config.verify_interval) {
        Verdict::Unchanged { verified_at } => {
            tracing::debug!(
                package = pkg,
                verified = %crate::schedule::rfc3339(verified_at),
                "the executables are unchanged since their last full verification"
            );
            return Ok(Vec::new());
        }
        Verdict::Verify(why) => {
            tracing::debug!(package = pkg, "verifying the executables in full: {why}")
        }
    }
    let problems = backend
        .verify_files(&installed.name)
        .map_err(AppError::from_backend)?;
    if problems.is_empty() && !dry_run {
        record_executables(env, backend, installed, now);
    } else if !problems.is_empty() {
        crate::integrity_cache::forget(&env.system);
    }
    Ok(problems)
}

/// Record what the filesystem says of the executables after they verified.
fn record_executables(env: &Env, backend: &dyn Backend, installed: &Installed, now: i64) {
    let files = match backend.executables(&installed.name) {
        Ok(f) => f,
        Err(e) => {
            tracing::debug!("cannot list the executables to record them: {e}");
            return;
        }
    };
    if let Err(e) = crate::integrity_cache::record(
        &env.system,
        installed.name.as_str(),
        &installed.version.to_string(),
        &files,
        now,
    ) {
        tracing::warn!(file = %crate::integrity_cache::path(&env.system).display(), "cannot record the verified executables: {e}");
    }
}

fn set_marker(config: &Config, present: bool, now: i64) {
    let p = config.marker_path();
    if let Err(e) = crate::marker::set(&p, present, now) {
        tracing::warn!(file = %p.display(), "cannot update the unhealthy marker: {e}");
    }
}

/// What the trust audit found: the package manager's configuration, and
/// the pinned key when `trusted-keys` is set.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Audit {
    pub checked: Vec<String>,
    pub warnings: Vec<String>,
    /// When the pinned key in use expires (Unix seconds).
    pub pinned_key_expires: Option<i64>,
}

/// The preflight trust audit of `source`: refused (exit 3) when the
/// configuration weakens verification or the pinned key is missing,
/// expired or revoked.
pub fn audit(
    env: &Env,
    backend: &dyn Backend,
    source: &backends::Source,
    config: &Config,
    now: i64,
) -> Result<Audit, AppError> {
    let report = backend
        .audit_trust(source)
        .map_err(AppError::from_backend)?;
    let mut a = Audit {
        checked: report.checked,
        ..Audit::default()
    };
    if let Some(pins) = &config.trusted_keys {
        let pinned =
            pinning::check(backend, source, &env.runner, pins, now).map_err(AppError::Refused)?;
        a.checked.extend(pinned.checked);
        a.warnings = pinned.warnings;
        a.pinned_key_expires = pinned.expires;
    }
    Ok(a)
}

/// `run`, `force` and `dry-run`. Prints the dry run's report to `out`.
pub fn update_command(env: &Env, mode: Mode, dry_run: bool, out: &mut dyn Write) -> Exit {
    let command = match (mode, dry_run) {
        (_, true) => "dry-run",
        (Mode::Force, false) => "force",
        (Mode::Run, false) => "run",
    };
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
    let result = update_inner(env, mode, dry_run, out, &mut rec);
    let exit = match &result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            tracing::error!("{e}");
            rec.error = Some(e.to_string());
            e.exit()
        }
    };
    rec.result = match &result {
        Ok(()) => "ok".into(),
        Err(e) => e.word().into(),
    };
    rec.exit_code = exit as u8;
    if !dry_run {
        let path = state::path(&env.system);
        let mut st = state::load(&path);
        state::clear_old_recovery(&mut st);
        if exit == Exit::Ok {
            st.last_success = Some(rec.time);
            if rec.decision.as_deref() == Some("update") {
                st.last_update = Some(rec.time);
                st.updates_total += 1;
            }
        }
        if exit != Exit::Ok {
            *st.failures.entry(rec.result.clone()).or_default() += 1;
        }
        match exit {
            Exit::Ok if rec.decision.as_deref() == Some("update") => st.failed_target = None,
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
        st.last_run = Some(rec);
        if let Err(e) = state::save(&path, &st) {
            tracing::warn!(file = %path.display(), "cannot write the state file: {e}");
        }
        write_metrics(env, &st);
    }
    exit
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

fn update_inner(
    env: &Env,
    mode: Mode,
    dry_run: bool,
    out: &mut dyn Write,
    rec: &mut LastRun,
) -> Result<(), AppError> {
    let config = Config::load(&env.config_dir)?;
    let now = env.clock.now();

    let schedule = read_schedule(&config);
    rec.schedule = Some(schedule.to_string());
    tracing::info!(schedule = %schedule, file = %config.schedule_path().display(), "read the maintenance schedule");
    let stand_down = if schedule == Schedule::StandDown {
        Some(Decision::StandDown.to_string())
    } else {
        managed_by_v2(&env.system).map(|f| {
            format!("stand down: Managed Updates v2 (teleport-update) manages this host ({f} is present and enabled)")
        })
    };
    if let Some(why) = stand_down {
        let d = Decision::StandDown;
        tracing::info!(decision = d.word(), "{why}");
        rec.decision = Some(d.word().into());
        rec.detail = Some(why.clone());
        if dry_run {
            let _ = writeln!(out, "decision: {why}");
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
    let installed = installed_agent(backend.as_ref(), &config)?;
    rec.package = Some(installed.name.to_string());
    rec.installed_before = Some(installed.version.to_string());
    tracing::info!(package = %installed.name, installed = %installed.version, installer = rec.installer.as_deref().unwrap_or(""), "found the agent package");

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
    let marker = crate::marker::Marker::read(&config.marker_path());
    let marker_present = marker.counts(now, config.unhealthy_interval);
    if marker.is_present() && !marker_present {
        tracing::info!(
            file = %config.marker_path().display(),
            interval_s = config.unhealthy_interval.as_secs(),
            "the unhealthy marker is younger than unhealthy-interval: this run does not count as a second observation"
        );
    }
    let service_unhealthy = health::service_unhealthy(&env.system, &env.runner);
    let schedule_unhealthy = schedule.unhealthy_reason(now);
    rec.unhealthy = schedule_unhealthy.clone().or(service_unhealthy.clone());
    tracing::info!(
        marker = marker_present,
        schedule = schedule_unhealthy.as_deref().unwrap_or("healthy"),
        service = service_unhealthy
            .as_deref()
            .unwrap_or("not failed (or no systemd)"),
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
        failed_before: match (
            &answer.target,
            state::load(&state::path(&env.system)).failed_target,
        ) {
            (Target::Version(t), Some(f)) => f.version == t.to_string(),
            _ => false,
        },
    };
    let outcome = decide(&observed);
    let d = &outcome.decision;
    rec.decision = Some(d.word().into());
    rec.detail = Some(d.to_string());
    tracing::info!(decision = d.word(), installed = %installed.version, target = %answer.target, "{d}");
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
    } else {
        if outcome.marker_after {
            tracing::info!(file = %config.marker_path().display(), "marking the agent unhealthy for the next run");
        }
        set_marker(&config, outcome.marker_after, now);
    }
    // A damaged binary at the right version is repaired (the package
    // manager alone would call it installed).
    let damage = if *d == Decision::UpToDate {
        let problems =
            verified_executables(env, backend.as_ref(), &config, &installed, now, dry_run)?;
        if problems.is_empty() {
            tracing::debug!(
                "{} {}: its executables verify",
                installed.name,
                installed.version
            );
            None
        } else {
            let list = problems
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            tracing::warn!(package = %installed.name, "the installed package's executables do not verify: {list}; reinstalling {}", installed.version);
            rec.decision = Some("repair".into());
            rec.detail = Some(format!("repair: {list}"));
            Some(list)
        }
    } else {
        None
    };
    if !d.is_update() && damage.is_none() {
        return Ok(());
    }
    let source = backend
        .locate_source(&installed.name)
        .map_err(AppError::from_backend)?;
    tracing::info!(source = %source.description, "found the repository that serves {}", installed.name);
    let source = finish_interrupted_move(backend.as_ref(), source, dry_run, out)?;
    let audit = audit(env, backend.as_ref(), &source, &config, now);
    if let Ok(a) = &audit {
        for w in &a.warnings {
            tracing::warn!("{w}");
        }
    }
    let target = match &answer.target {
        Target::Version(t) if damage.is_none() => Some(t),
        _ => None,
    };
    let channel_move = match target {
        Some(t) => backend
            .plan_channel_move(&source, t.major())
            .map_err(AppError::from_backend)?,
        None => None,
    };
    let before = health::agent_before(&env.system, &env.runner);
    let check = health_check(env, &config, before);
    if dry_run {
        match &audit {
            Ok(r) => {
                let _ = writeln!(out, "trust:     ok ({})", r.checked.join("; "));
            }
            Err(e) => {
                let _ = writeln!(out, "trust:     REFUSED: {e}");
            }
        }
        if let Some(list) = &damage {
            let _ = writeln!(out, "repair:    {list}");
        }
        if let Some(m) = &channel_move {
            let _ = writeln!(
                out,
                "channel:   when {} does not offer the target, would edit {m} (backup {})",
                m.from,
                env.system.display_path(&m.backup)
            );
        }
        let _ = writeln!(out, "would run:");
        let plan = match target {
            Some(t) => backend.plan(&source, &installed.name, &t.package_version()),
            None => backend.plan_reinstall(&source, &installed.name, &installed.version),
        };
        for c in plan {
            let _ = writeln!(out, "  {c}");
        }
        match before.restart() {
            Some(how) => {
                for c in health::restart_commands(how, false) {
                    let _ = writeln!(out, "  {c}");
                }
            }
            None if before == AgentBefore::Stopped => {
                let _ = writeln!(
                    out,
                    "  (no restart: {} is not running, and is left so)",
                    health::AGENT_UNIT
                );
            }
            None => {}
        }
        if let (Some(c), Some(_)) = (&check, target) {
            let _ = writeln!(
                out,
                "then:      wait for {}; otherwise roll back to {}",
                c.describe(),
                installed.version
            );
        }
        audit?;
        return Ok(());
    }
    let report = audit?;
    for c in &report.checked {
        tracing::info!("trust: {c}");
    }
    if installer == Installer::Nop {
        tracing::info!("installer is nop: not changing {}", installed.name);
        return Ok(());
    }
    let Some(target) = target else {
        // The repair: reinstall the installed version, then check again.
        backend
            .refresh(&source)
            .and_then(|()| backend.reinstall(&source, &installed.name, &installed.version))
            .map_err(AppError::from_backend)?;
        crate::integrity_cache::forget(&env.system);
        let left = backend
            .verify_files(&installed.name)
            .map_err(AppError::from_backend)?;
        if left.is_empty() {
            record_executables(env, backend.as_ref(), &installed, now);
        } else {
            return Err(AppError::UpdateFailed(format!(
                "reinstalled {} {}, but its executables still do not verify: {}",
                installed.name,
                installed.version,
                left.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        tracing::info!(package = %installed.name, version = %installed.version, "repaired: reinstalled, and its executables verify");
        rec.installed_after = Some(installed.version.to_string());
        return restart(env, before).map_err(|e| {
            AppError::UpdateFailed(format!("repaired the package, but the restart failed: {e}"))
        });
    };
    let version = target.package_version();
    // The package's files are about to change: the record of the last
    // verification no longer describes them (the next no-op verifies in
    // full, then records).
    crate::integrity_cache::forget(&env.system);

    // When the configured `stable/vN` does not offer the target (a new
    // major), move the channel to the target's major and try again; the
    // move is undone if anything after it fails.
    let mut source = source;
    let mut moved: Option<backends::channel::ChannelMove> = None;
    let after = match backend.update_to(&source, &installed.name, &version) {
        Ok(a) => a,
        Err(backends::Error::VersionNotFound { detail, .. }) if channel_move.is_some() => {
            tracing::info!("{version} is not offered by the configured channel ({detail}); moving the channel to stable/v{}", target.major());
            moved = backend
                .move_channel(&source, target.major())
                .map_err(AppError::from_backend)?;
            let retried = backend.reload_source(&source).and_then(|s| {
                source = s;
                backend.update_to(&source, &installed.name, &version)
            });
            match retried {
                Ok(a) => a,
                Err(e) => {
                    undo_move(moved.as_ref(), "the update failed");
                    return Err(AppError::from_backend(e));
                }
            }
        }
        Err(e) => return Err(AppError::from_backend(e)),
    };
    rec.installed_after = Some(after.version.to_string());
    tracing::info!(package = %after.name, from = %installed.version, to = %after.version, "updated and held the agent package");
    let keep_move = || {
        if let Some(m) = &moved {
            if let Err(e) = m.remove_backup() {
                tracing::warn!("cannot remove {}: {e}", m.backup.display());
            }
        }
    };
    let restarted = restart(env, before);
    let Some(check) = check else {
        keep_move();
        return restarted.map_err(|e| {
            AppError::UpdateFailed(format!("updated to {version}, but the restart failed: {e}"))
        });
    };
    let why = match restarted {
        Err(e) => format!("the restart failed: {e}"),
        Ok(()) => {
            tracing::info!("waiting for the agent to be healthy: {}", check.describe());
            match check.wait(&env.runner) {
                Verdict::Healthy(how) => {
                    tracing::info!("the agent is healthy: {how}");
                    keep_move();
                    return Ok(());
                }
                Verdict::Unverifiable => {
                    tracing::warn!("cannot verify the agent's health here: systemd is not running and no diagnostic address is known (set diag-addr, or diag_addr in /etc/teleport.yaml)");
                    keep_move();
                    return Ok(());
                }
                Verdict::Unhealthy(why) => why,
            }
        }
    };
    // Rolled back also when the agent had failed before the update: that
    // failure may have passed (a crash, memory), and the version before is
    // the host as it was; when it fails too, exit 7 says the host needs an
    // operator.
    if moved.is_some() {
        undo_move(moved.as_ref(), "rolling back");
        source = backend
            .reload_source(&source)
            .map_err(AppError::from_backend)?;
    }
    Err(roll_back(
        env,
        backend.as_ref(),
        &source,
        &installed,
        &version,
        why,
        &check,
        rec,
    ))
}

/// A channel move that an earlier run left unfinished (it was killed
/// between editing the repository definition and keeping or undoing the
/// edit: the backup is still there) is undone first, so this run starts
/// from the operator's file and moves the channel again only if its target
/// needs it. A file edited since that move is left as it is, with its
/// backup, and a warning.
fn finish_interrupted_move(
    backend: &dyn Backend,
    source: backends::Source,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<backends::Source, AppError> {
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

/// Put a channel move back (and drop its backup), saying why.
fn undo_move(moved: Option<&backends::channel::ChannelMove>, why: &str) {
    if let Some(m) = moved {
        match m.restore().and_then(|()| m.remove_backup()) {
            Ok(()) => tracing::warn!("{why}: restored {} to {}", m.file.display(), m.from),
            Err(e) => tracing::error!("{why}, and restoring the channel failed: {e}"),
        }
    }
}

/// Restart the agent after a change to its package, as its state before
/// the change asks: a running agent is restarted, a failed one started, a
/// stopped one left stopped.
fn restart(env: &Env, before: AgentBefore) -> Result<(), String> {
    let Some(how) = before.restart() else {
        if before == AgentBefore::Stopped {
            tracing::info!(
                "not restarting {}: it was not running before the update",
                health::AGENT_UNIT
            );
        }
        return Ok(());
    };
    restart_as(env, how)
}

fn restart_as(env: &Env, how: health::Restart) -> Result<(), String> {
    match health::restart_agent(&env.system, &env.runner, how) {
        Ok(true) => {
            tracing::info!("restarted {}", health::AGENT_UNIT);
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The post-update health check, unless `health-timeout` is 0 or the
/// agent was stopped before the update (the update does not start it).
fn health_check(env: &Env, config: &Config, before: AgentBefore) -> Option<Check> {
    if config.health_timeout.is_zero() || before == AgentBefore::Stopped {
        return None;
    }
    Some(Check::new(
        config.health_timeout,
        before != AgentBefore::NoSystemd,
        verify::readyz_url(config.diag_addr.as_deref(), &env.system),
    ))
}

/// Put the previous version back after `version` did not become healthy,
/// and say how that went: `RolledBack` (exit 6) when the previous version
/// is back and healthy, `RollbackFailed` (exit 7) otherwise. A failed
/// reinstall leaves the host as the package manager left it (the new
/// version installed and held), never half-removed.
#[allow(clippy::too_many_arguments)]
fn roll_back(
    env: &Env,
    backend: &dyn Backend,
    source: &backends::Source,
    before: &Installed,
    version: &backends::PkgVersion,
    why: String,
    check: &Check,
    rec: &mut LastRun,
) -> AppError {
    let pkg = &before.name;
    let prev = &before.version;
    tracing::error!(package = %pkg, failed = %version, back_to = %prev, "{pkg} {version} did not become healthy ({why}); rolling back to {prev}");
    rec.failed_health = Some(why.clone());
    match backend.update_to(source, pkg, prev) {
        Ok(back) => rec.installed_after = Some(back.version.to_string()),
        Err(e) => {
            let msg = format!("{pkg} {version} did not become healthy ({why}), and reinstalling {prev} failed: {e}; {pkg} {version} stays installed and held: repair the agent by hand");
            tracing::error!("ROLLBACK FAILED: {msg}");
            return AppError::RollbackFailed(msg);
        }
    }
    // The agent ran before the update: start it again even when the broken
    // version left the unit failed or stuck at its start limit
    // (`try-restart` would leave it down).
    if let Err(e) = restart_as(env, health::Restart::Start) {
        let msg = format!("{pkg} {version} did not become healthy ({why}); {prev} is reinstalled but restarting the agent failed: {e}");
        tracing::error!("ROLLBACK FAILED: {msg}");
        return AppError::RollbackFailed(msg);
    }
    match check.wait(&env.runner) {
        Verdict::Unhealthy(again) => {
            let msg = format!("{pkg} {version} did not become healthy ({why}); {prev} is reinstalled but is not healthy either ({again})");
            tracing::error!("ROLLBACK FAILED: {msg}");
            AppError::RollbackFailed(msg)
        }
        Verdict::Healthy(_) | Verdict::Unverifiable => AppError::RolledBack(format!(
            "{pkg} {version} did not become healthy ({why}); {prev} is back and healthy; {version} is not retried until the target changes or the update is critical"
        )),
    }
}
