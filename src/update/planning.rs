//! Plan: the decision's outcome turned into the steps this run executes
//! (or `dry-run` prints), after the gates an install must pass: the trust
//! audit (and key pin) of the source it installs from, and the cluster
//! guard and `installer`, which the decision already applied. What the
//! steps are is [`super::plan`]'s; here is only what they need from the
//! host: the source, the agent's restart and health check, the channel.

use std::io::Write;

use backends::Source;

use crate::config::Config;
use crate::decision::{Outcome, Resume};
use crate::error::AppError;
use crate::health::AgentBefore;
use crate::run::{audit, Env, Trusted};
use crate::verify::{self, Check};

use super::converge::finish_interrupted_move;
use super::observation::Seen;
use super::plan::{self, Facts, Plan};
use super::MAX_HEALTH_TIMEOUT;

/// What the run executes, and why it may end refused.
pub struct Planned {
    pub plan: Option<Plan>,
    /// The update was refused by a gate (exit 3 once the fallback repairs
    /// ran).
    pub refusal: Option<AppError>,
    pub source: Option<Source>,
    pub check: Option<Check>,
    /// The trust audit, when the plan needed one.
    pub trust: Option<Result<Trusted, String>>,
    /// The channel move the install may need, described.
    pub channel: Option<String>,
}

impl Planned {
    /// Whether the plan is the decision's update (not only repairs).
    pub fn runs_update(&self) -> bool {
        self.plan.as_ref().is_some_and(|p| {
            matches!(
                p.goal,
                plan::Goal::Update { .. } | plan::Goal::Rollback { .. }
            )
        })
    }
}

/// Plan the run.
pub fn plan(
    env: &Env,
    config: &Config,
    seen: &mut Seen,
    o: &Outcome,
    dry_run: bool,
    out: &mut dyn Write,
    rec: &mut crate::state::LastRun,
) -> Result<Planned, AppError> {
    let mut p = Planned {
        plan: None,
        refusal: o.refused.clone().map(AppError::Refused).or_else(|| {
            o.halted
                .map(|h| AppError::Halted(format!("{h}; nothing was changed")))
        }),
        source: None,
        check: None,
        trust: None,
        channel: None,
    };
    // An abandoned plan may have left a channel move: its source is looked
    // up to undo it, even when nothing else needs repair.
    let abandoning = matches!(o.resume, Resume::Abandon { .. });
    let wanted = match (&o.update, o.blocked()) {
        (Some(_), false) => true,
        (Some(_), true) => !o.fallback.is_empty() || abandoning,
        (None, _) => !o.repairs.is_empty() || abandoning,
    };
    if o.hands_off || !wanted {
        return Ok(p);
    }
    let source = seen.source()?;
    // A channel move an earlier run left is undone first, unless it is the
    // move of the update being finished (kept by its keep-channel step).
    let finishing = o.resume == Resume::Finish;
    let source = if finishing {
        source
    } else {
        finish_interrupted_move(seen.backend.as_ref(), source, dry_run, out)?
    };
    let before = seen.observed.agent;
    let update = o.update.as_ref().filter(|_| !o.blocked());
    if update.is_some() {
        p.check = health_check(env, config, before);
    }
    if o.downloads() {
        let now = seen.observed.now;
        let t = audit(env, seen.backend.as_ref(), &source, config, now);
        if let Ok(t) = &t {
            for w in &t.audit().warnings {
                tracing::warn!("trust: {w}");
            }
            rec.trust_warnings = t.audit().warnings.clone();
            for c in &t.audit().checked {
                tracing::info!("trust: {c}");
            }
        }
        p.trust = Some(match t {
            Ok(t) => Ok(t),
            Err(e) => {
                let shown = e.to_string();
                p.refusal = Some(e);
                Err(shown)
            }
        });
    }
    let mut channel_to = None;
    if let (Some(u), crate::target::Target::Version(t)) = (update, &seen.observed.target) {
        if finishing {
            let moved = seen
                .backend
                .interrupted_channel_move(&source)
                .map_err(AppError::from_backend)?;
            channel_to = moved.map(|_| t.major());
        } else if u.rollback_of.is_none() {
            let m = seen
                .backend
                .plan_channel_move(&source, t.major())
                .map_err(AppError::from_backend)?;
            p.channel = m.as_ref().map(|m| {
                format!(
                    "when {} does not offer the target, would edit {m} (backup {})",
                    m.from,
                    env.system.display_path(&m.backup)
                )
            });
            channel_to = m.map(|_| t.major());
        }
    }
    let facts = Facts {
        restart: restarts(before),
        verify: update.is_some() && verifies(config, before, &p.check),
        channel_to,
        swaps_holds: seen.backend.swaps_holds(),
    };
    let slot = match update {
        Some(u) if u.slot => slot_id(env, config)?,
        _ => None,
    };
    let trusted = p.trust.as_ref().and_then(|t| t.as_ref().ok());
    let installed = seen.installed.version.to_string();
    let slot = slot.as_ref().map(|(g, i)| (g.as_str(), i.as_str()));
    p.plan = plan::build(o, &installed, facts, slot, trusted);
    p.source = Some(source);
    Ok(p)
}

/// The FleetLock group and this host's id, when `fleet-lock` is set.
pub(super) fn slot_id(env: &Env, config: &Config) -> Result<Option<(String, String)>, AppError> {
    let Some(s) = crate::fleetlock::settings(config)? else {
        return Ok(None);
    };
    let file = env.system.path(crate::fleetlock::id::MACHINE_ID_FILE);
    let id = crate::fleetlock::host_id(&s, &file)?;
    Ok(Some((s.group, id)))
}

/// Whether the plan has a restart step: whenever systemd answers (a
/// stopped agent's step only says that it is left stopped).
pub fn restarts(before: AgentBefore) -> bool {
    // Unknown: the restart is planned, and deferred while systemd does not
    // answer (the plan stays in the journal for the next run).
    before.restart().is_some() || before == AgentBefore::Stopped || before == AgentBefore::Unknown
}

/// Whether the plan checks the new version's health: `check` is there, or
/// the agent's state is unknown now (the check then comes with the
/// deferred restart, once systemd answers).
pub fn verifies(config: &Config, before: AgentBefore, check: &Option<Check>) -> bool {
    check.is_some() || (before == AgentBefore::Unknown && !config.health_timeout.is_zero())
}

/// The post-update health check, unless `health-timeout` is 0 or the
/// agent was stopped before the update (the update does not start it).
pub fn health_check(env: &Env, config: &Config, before: AgentBefore) -> Option<Check> {
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
