//! Observe: everything the decision of a run depends on, gathered in one
//! place and turned into [`Observed`]: the installed package and its state,
//! the version server's answer, the agent's health, the cluster guard's
//! verdict, the proxy's jitter, and the plan an earlier run left unfinished.
//! Nothing here changes the host (the integrity record aside).

use backends::{Backend, Installed, Source};

use crate::client::{Client, Via};
use crate::config::{Config, Installer};
use crate::decision::{Mode, Observed, Unfinished};
use crate::error::AppError;
use crate::health::{self, AgentBefore, ServiceHealth};
use crate::marker::Marker;
use crate::run::{installed_agent, select_backend, Env};
use crate::schedule::Schedule;
use crate::state::{self, LastRun};
use crate::target::Target;
use crate::{observe, update::jitter};

/// What a run observed, and what it keeps of it to plan and execute.
pub struct Seen {
    pub observed: Observed,
    pub backend: Box<dyn Backend>,
    pub installed: Installed,
    /// The repository that serves the agent, once looked up (apt's no-op
    /// does not need it: its hold is dpkg's).
    pub source: Option<Result<Source, backends::Error>>,
    /// Whether the unhealthy marker was there at all (even too young to
    /// count).
    pub marker_seen: bool,
}

impl Seen {
    /// The repository that serves the agent, looked up now if not yet.
    pub fn source(&mut self) -> Result<Source, AppError> {
        let found = match self.source.take() {
            Some(found) => found,
            None => locate(self.backend.as_ref(), &self.installed),
        };
        let s = found.map_err(AppError::from_backend)?;
        self.source = Some(Ok(s.clone()));
        Ok(s)
    }
}

fn locate(backend: &dyn Backend, installed: &Installed) -> Result<Source, backends::Error> {
    match backend.locate_source(&installed.name) {
        Ok(s) => {
            tracing::info!(source = %s.description, "found the repository that serves {}", installed.name);
            Ok(s)
        }
        Err(e) => {
            tracing::warn!(package = %installed.name, "cannot find the repository that serves the agent: {e}");
            Err(e)
        }
    }
}

/// What the inputs of a run are, besides the configuration.
pub struct Ask<'a> {
    pub mode: Mode,
    pub dry_run: bool,
    pub schedule: Schedule,
    pub v2: Option<String>,
    pub unfinished: Option<Unfinished>,
    pub rec: &'a mut LastRun,
}

/// Observe the host, the version server and the agent.
pub fn observe(env: &Env, config: &Config, ask: Ask) -> Result<Seen, AppError> {
    let now = env.clock.now();
    let rec = ask.rec;
    let (backend, installer) = select_backend(env, config)?;
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
    if !ask.dry_run && installer != Installer::Nop {
        observe::wait_until_idle(&env.system, backend.kind(), config.lock_wait)?;
    }
    let installed = installed_agent(backend.as_ref(), config)?;
    rec.package = Some(installed.name.to_string());
    rec.installed_before = Some(installed.version.to_string());
    tracing::info!(package = %installed.name, installed = %installed.version, installer = rec.installer.as_deref().unwrap_or(""), "found the agent package");
    // The repository is needed now only when the hold is kept in it (dnf's
    // `exclude=`); apt's hold is in dpkg's database, so a no-op there asks
    // apt nothing, and the repository is found when a plan needs it.
    let source = backend
        .hold_needs_source()
        .then(|| locate(backend.as_ref(), &installed));
    let package = observe::package_state(
        backend.as_ref(),
        &installed.name,
        source.as_ref().and_then(|s| s.as_ref().ok()),
        observe::Integrity {
            version: installed.version.to_string(),
            now,
            interval: config.verify_interval,
            record_clean: !ask.dry_run,
        },
    );
    let server = ask_version_server(env, config, rec, installed.version.as_str())?;
    let (marker_seen, marker_present) = marker(env, config, now);
    let service = health::service_health(&env.system, &env.runner);
    let schedule_unhealthy = ask.schedule.unhealthy_reason(now);
    rec.unhealthy = schedule_unhealthy.clone().or(service.unhealthy());
    rec.in_window = Some(ask.schedule.current(now).is_some());
    tracing::info!(
        marker = marker_present,
        schedule = schedule_unhealthy.as_deref().unwrap_or("healthy"),
        service = %service,
        "checked the agent's health"
    );
    let st = state::load(&state::path(&env.system));
    let fleet_report = read_fleet_report(config, &server.target, &installed.version)?;
    let observed = Observed {
        mode: ask.mode,
        now,
        target: server.target,
        critical: server.critical,
        group: server.group,
        schedule: ask.schedule,
        service_unhealthy: service.unhealthy(),
        marker_present,
        installed: installed.version.clone(),
        failed_critical: st.failed_target.as_ref().is_some_and(|f| f.critical),
        failed_target: st.failed_target.map(|f| f.version),
        v2: ask.v2,
        package,
        window_margin: config.window_margin.as_secs() as i64,
        installer_nop: installer == Installer::Nop,
        agent: agent_before(&service),
        restart_mode: config.restart_mode,
        fleet_lock: crate::fleetlock::settings(config)?.is_some(),
        slot_record: slot_record(env, config),
        jitter: server.jitter,
        guard: server.guard,
        unfinished: ask.unfinished,
        lower_seen: st.lower_target,
        confirm_interval: config.unhealthy_interval.as_secs() as i64,
        fleet_report,
    };
    Ok(Seen {
        observed,
        backend,
        installed,
        source,
        marker_seen,
    })
}

/// The fleet's record of the target in this host's group, when
/// `fleet-report` is set and the target is not installed (a run at the
/// target asks nothing). An unreachable record is logged: the slot count
/// alone bounds the rollout then.
fn read_fleet_report(
    config: &Config,
    target: &Target,
    installed: &backends::PkgVersion,
) -> Result<Option<crate::fleetlock::report::Seen>, AppError> {
    use crate::fleetlock::report::{Seen, Store};
    let (Some((base, rule)), Target::Version(t)) =
        (crate::fleetlock::report_settings(config)?, target)
    else {
        return Ok(None);
    };
    if installed.same_upstream(&t.package_version()) {
        return Ok(None);
    }
    let Some(group) = crate::fleetlock::settings(config)?.map(|s| s.group) else {
        return Ok(None);
    };
    let to = t.package_version().to_string();
    let seen = match Store::new(&base).and_then(|s| s.read(&group, &to)) {
        Ok((counts, _)) => {
            tracing::info!(group = %group, target = %to, ok = counts.ok, failed = counts.failed, "read the fleet's record of completed updates");
            Seen::Read { counts, rule }
        }
        Err(e) => {
            tracing::warn!(group = %group, target = %to, "cannot read the fleet's record of completed updates ({e}): no failure-rate halt in this run, the slot count alone bounds the rollout");
            Seen::Unreachable(e)
        }
    };
    Ok(Some(seen))
}

/// What the state file says of this host's FleetLock slot, for the
/// current group and id (an id that cannot be read: no record).
/// Without `fleet-lock`, nothing is read (the decision ignores it).
fn slot_record(env: &Env, config: &Config) -> crate::fleetlock::SlotRecord {
    use crate::fleetlock::SlotRecord;
    let Ok(Some((group, id))) = super::planning::slot_id(env, config) else {
        return SlotRecord::Unknown;
    };
    let st = state::load(&state::path(&env.system));
    match (st.fleet_lock, st.fleet_lock_clear) {
        (Some(_), _) => SlotRecord::Kept,
        (None, Some(c)) if c.group == group && c.id == id => SlotRecord::Clear,
        _ => SlotRecord::Unknown,
    }
}

/// What systemd said of the agent, as the restart after a change needs
/// it (the same `ActiveState` words `systemctl show` gives).
fn agent_before(service: &ServiceHealth) -> AgentBefore {
    match service {
        ServiceHealth::NoSystemd => AgentBefore::NoSystemd,
        ServiceHealth::Unknown(_) => AgentBefore::Unknown,
        ServiceHealth::Ok(s) | ServiceHealth::Unhealthy(s) => AgentBefore::from_active_state(s),
    }
}

/// The unhealthy marker: ours, or v1's `state-unhealthy` on a host
/// migrating from the shipped updater (the earlier one counts). (seen at
/// all, counts as a second sighting).
fn marker(env: &Env, config: &Config, now: i64) -> (bool, bool) {
    let marker = match (
        Marker::read(&config.marker_path()),
        Marker::read(&state::v1_marker(&env.system)),
    ) {
        (Marker::Since(a), Marker::Since(b)) => Marker::Since(a.min(b)),
        (Marker::Absent, m) | (m, Marker::Absent) => m,
    };
    let seen = marker.is_present();
    let counts = marker.counts(now, config.unhealthy_interval);
    if seen && !counts {
        tracing::info!(
            file = %config.marker_path().display(),
            interval_s = config.unhealthy_interval.as_secs(),
            "the unhealthy marker is younger than unhealthy-interval: this run does not count as a second observation"
        );
    }
    (seen, counts)
}

/// What the version server (and, for a proxy, the cluster) said.
struct Server {
    target: Target,
    critical: bool,
    /// The update group whose answer decides (see [`Observed::group`]).
    group: Option<String>,
    jitter: Option<u64>,
    guard: Option<String>,
}

fn ask_version_server(
    env: &Env,
    config: &Config,
    rec: &mut LastRun,
    installed: &str,
) -> Result<Server, AppError> {
    let (endpoint, insecure) = config.version_server()?;
    let ca = config.ca_file.as_ref().map(|p| env.system.path(p));
    let group = crate::update_group::resolve(config, &env.system)?;
    let client = Client::new(&endpoint, insecure, ca.as_deref())?
        .with_group(group.as_ref().map(|(g, _)| g.as_str()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Usage(format!("cannot start the async runtime: {e}")))?;
    let answer = rt
        .block_on(client.fetch())
        .map_err(|e| proxy_hint(env, &endpoint, insecure, e))?;
    if let Some(w) = &answer.critical_warning {
        tracing::warn!("{w}");
    }
    rec.target = Some(answer.target.to_string());
    rec.critical = Some(answer.critical);
    rec.update_group = group.map(|(g, from)| group_answer(g, from, &answer, rec.time));
    match answer.via {
        Via::VersionFiles => {
            tracing::info!(endpoint = %endpoint, target = %answer.target, critical = answer.critical, "asked the version server")
        }
        Via::Find => match &answer.group {
            Some(g) => {
                tracing::info!(endpoint = %endpoint, group = %g, target = %answer.target, update_now = answer.critical, "the proxy's /webapi/find answers for update group {g:?}: its agent_version is the target and its agent_auto_update decides when (the cluster's rollout, not the local windows)")
            }
            None => {
                tracing::info!(endpoint = %endpoint, target = %answer.target, update_now = answer.critical, "the proxy's /webapi/find advertises the agent version (auto_update.agent_version; agent_auto_update counts as critical)")
            }
        },
    }
    // The cluster-compatibility guard: its verdict is recorded for
    // `status` whatever the decision; `decide` applies its refusal.
    let mut guard = None;
    if let Target::Version(t) = &answer.target {
        let find = answer.find_body.as_deref();
        let learned = crate::cluster::learn(&env.system, &endpoint, insecure, &client, &rt, find);
        let v = crate::cluster::verdict(t, learned.as_ref().map_err(String::as_str));
        rec.cluster_version = v.cluster().map(|c| c.to_string());
        rec.cluster_guard = Some(v.to_string());
        guard = v.refusal(config.cluster_guard);
        if let crate::cluster::Verdict::Unknown(_) = &v {
            guard = guard.or_else(|| crate::cluster::far_below_installed(t, installed));
        }
        match &v {
            crate::cluster::Verdict::Unknown(_) if guard.is_none() => {
                tracing::info!(cluster_guard = config.cluster_guard.word(), "{v}")
            }
            _ => tracing::info!(cluster = ?v.cluster().map(|c| c.to_string()), "{v}"),
        }
    }
    Ok(Server {
        target: answer.target,
        critical: answer.critical,
        group: answer.group,
        jitter: answer.find_body.as_deref().and_then(jitter::jitter_seconds),
        guard,
    })
}

/// What the cluster said for `group`, for `status` (`answered` is false
/// when the proxy gave no group answer and `/version` decided).
fn group_answer(
    group: String,
    from: &str,
    answer: &crate::client::Answer,
    asked: i64,
) -> crate::update_group::GroupAnswer {
    let answered = answer.group.is_some();
    crate::update_group::GroupAnswer {
        group,
        from: from.to_string(),
        answered,
        version: answered.then(|| answer.target.to_string()),
        update_now: answered.then_some(answer.critical),
        asked,
    }
}

/// A version server that could not be reached (no connection, no answer
/// in time): say which proxy was used, or that none is configured and where
/// the agent's is.
fn proxy_hint(env: &Env, to: &crate::config::Endpoint, insecure: bool, e: AppError) -> AppError {
    match e {
        AppError::Target { endpoint, detail }
            if detail.starts_with("could not connect")
                || detail.starts_with("timed out")
                || detail.starts_with("no answer within") =>
        {
            let agent = env.system.path(crate::proxy::AGENT_ENV_FILE);
            let agent = crate::fsread::read_bounded(&agent, crate::fsread::STATE_CAP)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned());
            let scheme = if insecure { "http" } else { "https" };
            let port = to.port.unwrap_or(if insecure { 80 } else { 443 });
            let hint = crate::proxy::unreachable_hint(
                &crate::proxy::ProxyEnv::from_env(),
                (scheme, &to.host, port),
                agent.as_deref(),
            );
            AppError::Target {
                endpoint,
                detail: format!("{detail} ({hint})"),
            }
        }
        e => e,
    }
}
