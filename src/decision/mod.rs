//! The decision of one run: a pure function of what was observed.
//!
//! Every policy choice of a run is made here, and only here: whether to
//! update (and why), what to repair, what becomes of a plan an earlier run
//! left unfinished ([`resume`]), and how an update runs: under a FleetLock
//! slot or not, after a jitter wait or not, reloading or restarting the
//! agent, refused by the cluster guard or not ([`UpdateSpec`]). The plan
//! ([`crate::update::plan`]) only turns the outcome into steps.

mod display;
pub mod downgrade;
pub mod mirror_wait;
pub mod resume;

use backends::PkgVersion;
use serde::Serialize;

use crate::config::RestartMode;
use crate::health::AgentBefore;
use crate::schedule::{Schedule, Window};
use crate::target::Target;

pub use downgrade::LowerSeen;
pub use resume::{Resume, Unfinished};

/// How the run was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The timer's run: policy decides.
    Run,
    /// An operator's `force`: window and health are ignored (stand-down,
    /// validation and trust are not).
    Force,
}

/// Everything the decision depends on.
#[derive(Debug, Clone)]
pub struct Observed {
    pub mode: Mode,
    /// Unix seconds, from the injected clock.
    pub now: i64,
    pub target: Target,
    pub critical: bool,
    /// The cluster's update group whose `/webapi/find` answer decides:
    /// then `critical` is the group's `agent_auto_update` (the cluster's
    /// rollout has reached the group), which replaces the local windows.
    pub group: Option<String>,
    pub schedule: Schedule,
    /// Why the agent's service looks unhealthy, when systemd says so.
    pub service_unhealthy: Option<String>,
    /// Whether the previous run left the `mark-unhealthy` marker.
    pub marker_present: bool,
    /// The installed agent version.
    pub installed: PkgVersion,
    /// The target that failed its health check on this host and was
    /// rolled back (recorded in the state file).
    pub failed_target: Option<String>,
    /// That target failed on a critical attempt: critical does not try it
    /// again (only a new target or `force` does).
    pub failed_critical: bool,
    /// Managed Updates v2's configuration file, when v2 manages the agent.
    pub v2: Option<String>,
    /// The agent package as the package manager has it.
    pub package: PackageState,
    /// Seconds: a routine update is not started when less than this is
    /// left of the current window (at most a quarter of the window), so
    /// that its restart does not land after the window closed.
    pub window_margin: i64,
    /// `installer` is `nop`: the operator forbids every change.
    pub installer_nop: bool,
    /// The agent as systemd sees it now (how a change restarts it).
    pub agent: AgentBefore,
    /// `restart-mode`.
    pub restart_mode: RestartMode,
    /// `fleet-lock` is set: routine updates run under a slot.
    pub fleet_lock: bool,
    /// What the state file says of this host's slot.
    pub slot_record: crate::fleetlock::SlotRecord,
    /// The proxy's `agent_update_jitter_seconds`, when it sent one.
    pub jitter: Option<u64>,
    /// The cluster guard's refusal of the advertised target, if it refuses.
    pub guard: Option<String>,
    /// A plan an earlier run left unfinished (its journal).
    pub unfinished: Option<Unfinished>,
    /// A target below the installed version that an earlier check saw
    /// (the state file), and when it first saw it.
    pub lower_seen: Option<LowerSeen>,
    /// Seconds (`unhealthy-interval`): a lower target is installed only
    /// when seen on two checks at least this far apart (or critical).
    pub confirm_interval: i64,
    /// The fleet's record of completed updates of the target in this
    /// host's group (`fleet-report`), read before a slot is taken.
    pub fleet_report: Option<crate::fleetlock::report::Seen>,
}

/// The failure-rate halt: too many completed updates of the target failed
/// in the group, so no slot is taken for it (result word rollout-halted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Halted {
    pub counts: crate::fleetlock::report::Counts,
    pub rule: crate::fleetlock::report::HaltRule,
}

impl std::fmt::Display for Halted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.counts;
        write!(
            f,
            "{} of {} completed updates of the target in the group failed ({} %), more than fleet-halt-rate {} % (once at least {} completed): no slot is taken",
            c.failed,
            c.total(),
            crate::fleetlock::report::rate_text(
                (c.failed * 1000 / c.total().max(1)) as u32
            ),
            self.rule.rate_text(),
            self.rule.min_sample
        )
    }
}

/// The margin that applies to `window`: `margin`, at most a quarter of
/// the window (a short window still gets its updates).
pub fn effective_margin(window: &Window, margin: i64) -> i64 {
    margin.clamp(0, ((window.stop - window.start) / 4).max(0))
}

/// The agent package's state besides its version: what a run converges
/// whether or not an update is due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageState {
    /// Whether it is held (`None`: could not be read).
    pub held: Option<bool>,
    /// An interrupted package transaction (dpkg half-configured or its
    /// journal unfinished; two versions of it in the rpm database).
    pub interrupted: Option<String>,
    /// Its executables do not verify: what is wrong.
    pub damaged: Option<String>,
}

/// What a run with `decision` repairs besides: nothing when it stands
/// down or updates (the update installs, finishes and holds anyway);
/// otherwise what converges the host, and a reinstall of damaged files
/// when up to date.
fn repairs_for(decision: &Decision, converge: &Repairs, p: &PackageState) -> Repairs {
    match decision {
        Decision::StandDown { .. } | Decision::Update { .. } => Repairs::default(),
        d => Repairs {
            damaged: p.damaged.clone().filter(|_| *d == Decision::UpToDate),
            ..converge.clone()
        },
    }
}

/// The repairs a run makes where no update is due.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Repairs {
    /// Finish the interrupted transaction (what was found).
    pub interrupted: Option<String>,
    /// Hold the package.
    pub unheld: bool,
    /// Reinstall the installed version: what is damaged.
    pub damaged: Option<String>,
}

impl Repairs {
    pub fn is_empty(&self) -> bool {
        self.interrupted.is_none() && !self.unheld && self.damaged.is_none()
    }

    /// One line per repair, for the log and the record.
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(w) = &self.interrupted {
            v.push(format!("finish the interrupted package transaction ({w})"));
        }
        if let Some(d) = &self.damaged {
            v.push(format!("reinstall the installed version: {d}"));
        }
        if self.unheld {
            v.push("hold the agent package (it is not held)".into());
        }
        v
    }
}

/// Who told the run to stand down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "kebab-case")]
pub enum StandDownBy {
    /// The schedule file says `nop`.
    Schedule,
    /// Managed Updates v2 (`teleport-update`) manages the agent: its
    /// configuration file.
    V2 { file: String },
}

/// The stand-down, from what is known before anything else is looked at
/// (the schedule and v2's configuration).
pub fn stand_down(schedule: &Schedule, v2: Option<&str>) -> Option<Decision> {
    if *schedule == Schedule::StandDown {
        return Some(Decision::StandDown {
            by: StandDownBy::Schedule,
        });
    }
    v2.map(|f| Decision::StandDown {
        by: StandDownBy::V2 { file: f.into() },
    })
}

/// The installed version is a target given up on here (rolled back, or
/// its rollback failed too): a failed maintainer script of it is not run
/// again at every run; the package is held as it is, and `status` shows
/// the failed target.
fn given_up(o: &Observed) -> bool {
    o.failed_target
        .as_deref()
        .is_some_and(|f| PkgVersion::parse(f).is_ok_and(|f| o.installed.same_upstream(&f)))
}

/// Why an update happens now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum UpdateReason {
    Forced,
    Critical,
    InWindow {
        window: Window,
    },
    /// The cluster's rollout has reached this host's update group (its
    /// `agent_auto_update`): a routine update, like one in a window.
    ClusterGroup {
        group: String,
    },
    /// Unhealthy on this run and on the previous one.
    Unhealthy {
        why: String,
    },
    /// An earlier run installed the target and was stopped before it
    /// restarted and checked the agent: that is finished now.
    Finish,
    /// An earlier run's update to `failed` did not become healthy (`why`)
    /// and was stopped while rolling back: the rollback is made again.
    RollBack {
        failed: String,
        why: String,
    },
}

/// Why the run waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WaitReason {
    OutsideWindow {
        next: Option<Window>,
    },
    /// First run to see the agent unhealthy: mark and wait one more run,
    /// in case the agent has just restarted.
    FirstUnhealthy {
        why: String,
    },
    /// The target failed its health check here and was rolled back: not
    /// retried until the target changes or the update is critical.
    FailedBefore,
    /// The cluster's rollout has not reached this host's update group
    /// (its `agent_auto_update` is false).
    ClusterGroup {
        group: String,
    },
    /// Inside a window, but too little of it is left for the update's
    /// restart to land inside it (`window-margin`).
    WindowClosing {
        window: Window,
        margin: i64,
        next: Option<Window>,
    },
    /// The target is below the installed version and not confirmed yet:
    /// it is installed once a check at or after `confirm_at` (Unix
    /// seconds) still advertises it (no flapping between the versions of
    /// proxies that disagree).
    LowerUnconfirmed {
        target: String,
        since: i64,
        confirm_at: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Decision {
    /// The schedule says `nop`, or v2 manages the agent: another updater
    /// manages this host.
    StandDown {
        by: StandDownBy,
    },
    /// The version server advertises no target.
    NoTarget,
    /// The installed version is the target.
    UpToDate,
    Update {
        reason: UpdateReason,
    },
    Wait {
        reason: WaitReason,
    },
}

/// An update to run: what the plan installs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSpec {
    /// The version the update starts from: put back when the new one
    /// does not become healthy (for a resumed update, the version its
    /// first run started from, whatever is installed now).
    pub from: PkgVersion,
    /// The package version to install.
    pub to: String,
    /// This update puts back the version before a failed one (its target):
    /// it has no rollback of its own.
    pub rollback_of: Option<String>,
    /// Under a FleetLock slot (a routine or unhealthy update, with
    /// `fleet-lock` set; critical and forced updates ignore the lock).
    pub slot: bool,
    /// Wait a random delay up to this many seconds first (the proxy's
    /// jitter, capped; routine updates only).
    pub jitter: Option<u64>,
    /// Reload the agent instead of restarting it; `Err` says why not.
    pub reload: Result<(), &'static str>,
    /// The FleetLock slot is held already (an earlier run of this update
    /// took it): it is given back, not taken again.
    pub slot_held: bool,
    /// Steps an earlier run of this update made already, not made again
    /// (finishing an installed update: no refresh, no second restart).
    pub skip: Vec<&'static str>,
    /// Halt on the release, not on the host: the host was unhealthy before
    /// this update (it is made because of that, or the service was seen
    /// failing), so a rollback says nothing of the release: the slot is
    /// given back, and the rollback counted as an update that did not cure
    /// the host. A host healthy before keeps its slot on a rollback.
    pub release_slot_on_rollback: bool,
}

/// The decision and everything it implies for this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    /// Whether `mark-unhealthy` must exist after this run (it is consumed
    /// on every run and written only by a first unhealthy sighting).
    pub marker_after: bool,
    /// What the run repairs besides (only when no update is due: an update
    /// installs, finishes and holds anyway).
    pub repairs: Repairs,
    /// What the run converges when its update cannot run (refused by a
    /// gate) after an earlier run left a plan unfinished: finish an
    /// interrupted transaction, hold what is installed. (A fresh run that
    /// is refused changes nothing.)
    pub fallback: Repairs,
    /// The update to run, when the decision is one.
    pub update: Option<UpdateSpec>,
    /// The cluster guard refuses the update (exit 3; only the fallback
    /// repairs run).
    pub refused: Option<String>,
    /// `installer` is `nop`: nothing is changed at all.
    pub hands_off: bool,
    /// What becomes of the plan an earlier run left unfinished.
    pub resume: Resume,
    /// The FleetLock protocol's start-up release: this host has no record
    /// of its slot (new, re-imaged, state lost, id or group changed) and
    /// takes none in this run, so it tells the lock server it holds none
    /// (a slot held under this id before the record was lost is freed).
    pub release_at_start: bool,
    /// The lower target to record in the state file for the next check
    /// (`None`: the target is not below the installed version).
    pub lower_after: Option<LowerSeen>,
    /// The version server's answers disagree (what, as a sentence).
    pub disagreement: Option<String>,
    /// The update would take a slot, and the rollout of its target is
    /// halted on its failure rate: it does not run (only the fallback
    /// repairs do), exit 1, result word rollout-halted.
    pub halted: Option<Halted>,
}

impl Outcome {
    fn of(decision: Decision) -> Outcome {
        Outcome {
            decision,
            marker_after: false,
            repairs: Repairs::default(),
            fallback: Repairs::default(),
            update: None,
            refused: None,
            hands_off: false,
            resume: Resume::None,
            release_at_start: false,
            lower_after: None,
            disagreement: None,
            halted: None,
        }
    }

    /// A gate stops the update: the cluster guard, or the failure-rate
    /// halt.
    pub fn blocked(&self) -> bool {
        self.refused.is_some() || self.halted.is_some()
    }

    /// Whether the plan of this outcome needs the trust audit: it
    /// downloads (an update that may run, or a reinstall).
    pub fn downloads(&self) -> bool {
        !self.hands_off
            && ((self.update.is_some() && self.refused.is_none()) || self.repairs.damaged.is_some())
    }
}

/// Decide. Order: stand down on `nop`; nothing on `none`; nothing when the
/// installed version is the target; update when forced, critical, strictly
/// inside a window, or unhealthy on two consecutive runs; otherwise wait.
/// A target below the installed version is an update too (fleet rollback),
/// once it is confirmed: seen on two checks at least `unhealthy-interval`
/// apart ([`downgrade`]), unless critical or forced. With an update group
/// the proxy answered for (`group`), its `agent_auto_update` replaces
/// critical, the windows and the unhealthy rule: update when the cluster's
/// rollout has reached the group, wait otherwise.
///
/// An unfinished plan is judged first ([`resume::judge`]): an update is
/// continued only when a fresh run from the version it started from would
/// make the same update now; an interrupted rollback is made again;
/// anything else is abandoned once the host is converged.
///
/// Repairs: where no update is due (and the run does not stand down), an
/// interrupted transaction is finished and an unheld package held, outside
/// any window (they change no version); damaged executables are reinstalled
/// when the installed version is the target.
pub fn decide(o: &Observed) -> Outcome {
    let resume = resume::judge(o);
    let mut out = match (&resume, &o.unfinished) {
        (Resume::Continue, Some(Unfinished::Update { from, .. })) => {
            let mut out = decide_version(&Observed {
                installed: from.clone(),
                ..o.clone()
            });
            out.update = update_spec(o, &out.decision, from.clone());
            out
        }
        (
            Resume::Finish,
            Some(Unfinished::Update {
                from,
                to,
                slot,
                done,
                ..
            }),
        ) => {
            let mut out = Outcome::of(Decision::Update {
                reason: UpdateReason::Finish,
            });
            let mut skip = vec!["refresh", "jitter", "keep-previous"];
            skip.extend(
                ["restart", "reload", "verify"]
                    .into_iter()
                    .filter(|s| done.iter().any(|d| d == s)),
            );
            out.update = Some(UpdateSpec {
                from: from.clone(),
                to: to.clone(),
                rollback_of: None,
                slot: *slot && o.fleet_lock,
                jitter: None,
                reload: Err("finishing an earlier run's update restarts the agent"),
                slot_held: *slot,
                skip,
                release_slot_on_rollback: false,
            });
            out
        }
        (Resume::RollBack, Some(Unfinished::RollingBack { from, to, why })) => {
            let mut out = Outcome::of(Decision::Update {
                reason: UpdateReason::RollBack {
                    failed: to.clone(),
                    why: why.clone(),
                },
            });
            out.update = Some(UpdateSpec {
                from: o.installed.clone(),
                to: from.to_string(),
                rollback_of: Some(to.clone()),
                slot: false,
                jitter: None,
                reload: Err("a rollback restarts the agent"),
                slot_held: false,
                skip: Vec::new(),
                release_slot_on_rollback: false,
            });
            out
        }
        _ => {
            let mut out = decide_version(o);
            out.update = update_spec(o, &out.decision, o.installed.clone());
            out
        }
    };
    out.resume = resume;
    let p = &o.package;
    let stood_down = matches!(out.decision, Decision::StandDown { .. });
    let converge = Repairs {
        interrupted: p.interrupted.clone().filter(|_| !given_up(o)),
        unheld: p.held == Some(false),
        damaged: None,
    };
    out.repairs = repairs_for(&out.decision, &converge, p);
    // A refused update changes nothing on a fresh run; after an
    // interrupted plan the host is converged all the same.
    if !stood_down && o.unfinished.is_some() {
        out.fallback = converge;
    }
    // The guard judges what is to be installed: not an install already
    // made (finished), nor the version before (a rollback).
    if out.update.is_some()
        && matches!(
            out.resume,
            Resume::None | Resume::Continue | Resume::Abandon { .. }
        )
    {
        out.refused = o.guard.clone();
        out.halted = halted(o, &out);
    }
    out.hands_off = o.installer_nop;
    let takes_slot = out.update.as_ref().is_some_and(|u| u.slot) && out.halted.is_none();
    let plan_took_slot = matches!(&o.unfinished, Some(Unfinished::Update { slot: true, .. }));
    out.release_at_start = o.fleet_lock
        && o.slot_record == crate::fleetlock::SlotRecord::Unknown
        && !takes_slot
        && !plan_took_slot
        && !out.hands_off;
    out.lower_after = downgrade::seen_after(&o.target, &o.installed, o.lower_seen.as_ref(), o.now);
    out.disagreement = downgrade::disagreement(&o.target, o.lower_seen.as_ref());
    out
}

/// The failure-rate halt of a fresh slot take (not of a slot held
/// already, by this plan or the unfinished one it continues, nor of an
/// update the guard refuses).
fn halted(o: &Observed, out: &Outcome) -> Option<Halted> {
    use crate::fleetlock::report::Seen;
    let u = out.update.as_ref()?;
    let plan_took_slot = matches!(&o.unfinished, Some(Unfinished::Update { slot: true, .. }));
    if !u.slot || u.slot_held || plan_took_slot || out.refused.is_some() {
        return None;
    }
    match &o.fleet_report {
        Some(Seen::Read { counts, rule }) if rule.halts(counts) => Some(Halted {
            counts: *counts,
            rule: *rule,
        }),
        _ => None,
    }
}

/// How the update `d` runs, when it is one: to the advertised target,
/// from `from`.
fn update_spec(o: &Observed, d: &Decision, from: PkgVersion) -> Option<UpdateSpec> {
    let (Decision::Update { reason }, Target::Version(t)) = (d, &o.target) else {
        return None;
    };
    let routine = matches!(
        reason,
        UpdateReason::InWindow { .. } | UpdateReason::ClusterGroup { .. }
    );
    Some(UpdateSpec {
        from,
        to: t.package_version().to_string(),
        rollback_of: None,
        slot: o.fleet_lock && (routine || matches!(reason, UpdateReason::Unhealthy { .. })),
        jitter: o
            .jitter
            .filter(|j| routine && *j > 0)
            .map(|j| j.min(crate::update::jitter::MAX_JITTER.as_secs())),
        reload: crate::health::may_reload(o.restart_mode, o.agent, reason),
        slot_held: false,
        skip: Vec::new(),
        release_slot_on_rollback: matches!(reason, UpdateReason::Unhealthy { .. })
            || o.service_unhealthy.is_some(),
    })
}

fn decide_version(o: &Observed) -> Outcome {
    confirm_lower(o, decide_target(o))
}

/// No flapping: a routine or unhealthy update to a target below the
/// installed version waits until a second check, `unhealthy-interval`
/// after the first, still advertises it (forced and critical updates do
/// not wait). An unhealthy agent's marker is kept for that check.
fn confirm_lower(o: &Observed, out: Outcome) -> Outcome {
    let (Decision::Update { reason }, Target::Version(t)) = (&out.decision, &o.target) else {
        return out;
    };
    if o.guard.is_some() {
        // A target the cluster guard refuses (e.g. far below the agent) is
        // refused at once, not waited for.
        return out;
    }
    let gated = matches!(
        reason,
        UpdateReason::InWindow { .. }
            | UpdateReason::ClusterGroup { .. }
            | UpdateReason::Unhealthy { .. }
    );
    if !gated || !downgrade::is_lower(t, &o.installed) {
        return out;
    }
    let word = t.to_string();
    let seen = o.lower_seen.as_ref().filter(|s| s.version == word);
    match downgrade::unconfirmed(&word, seen, o.now, o.confirm_interval) {
        None => out,
        Some(confirm_at) => Outcome {
            marker_after: matches!(reason, UpdateReason::Unhealthy { .. }),
            ..Outcome::of(Decision::Wait {
                reason: WaitReason::LowerUnconfirmed {
                    since: seen.map_or(o.now, |s| s.since),
                    target: word,
                    confirm_at,
                },
            })
        },
    }
}

fn decide_target(o: &Observed) -> Outcome {
    let done = Outcome::of;
    if let Some(d) = stand_down(&o.schedule, o.v2.as_deref()) {
        return done(d);
    }
    let target = match &o.target {
        Target::NoTarget => return done(Decision::NoTarget),
        Target::Version(v) => v,
    };
    if o.installed.same_upstream(&target.package_version()) {
        return done(Decision::UpToDate);
    }
    let update = |reason| done(Decision::Update { reason });
    if o.mode == Mode::Force {
        return update(UpdateReason::Forced);
    }
    let failed_before = o
        .failed_target
        .as_deref()
        .is_some_and(|f| f == target.to_string());
    if o.critical && o.group.is_none() && !(failed_before && o.failed_critical) {
        return update(UpdateReason::Critical);
    }
    if failed_before {
        return done(Decision::Wait {
            reason: WaitReason::FailedBefore,
        });
    }
    if let Some(group) = &o.group {
        // The cluster orders the rollout: its answer for the group is the
        // window (and an unhealthy agent waits for it too).
        let group = group.clone();
        return match o.critical {
            true => update(UpdateReason::ClusterGroup { group }),
            false => done(Decision::Wait {
                reason: WaitReason::ClusterGroup { group },
            }),
        };
    }
    let mut closing = None;
    if let Some(window) = o.schedule.current(o.now) {
        let margin = effective_margin(&window, o.window_margin);
        if window.stop - o.now > margin {
            return update(UpdateReason::InWindow { window });
        }
        closing = Some((window, margin));
    }
    let unhealthy = o
        .schedule
        .unhealthy_reason(o.now)
        .or_else(|| o.service_unhealthy.clone());
    match unhealthy {
        Some(why) if o.marker_present => update(UpdateReason::Unhealthy { why }),
        Some(why) => Outcome {
            marker_after: true,
            ..done(Decision::Wait {
                reason: WaitReason::FirstUnhealthy { why },
            })
        },
        None => done(Decision::Wait {
            reason: match closing {
                Some((window, margin)) => WaitReason::WindowClosing {
                    window,
                    margin,
                    next: o.schedule.next(window.stop),
                },
                None => WaitReason::OutsideWindow {
                    next: o.schedule.next(o.now),
                },
            },
        }),
    }
}

impl Decision {
    pub fn is_update(&self) -> bool {
        matches!(self, Decision::Update { .. })
    }

    /// A short machine word: stand-down, no-target, up-to-date, update, wait.
    pub fn word(&self) -> &'static str {
        match self {
            Decision::StandDown { .. } => "stand-down",
            Decision::NoTarget => "no-target",
            Decision::UpToDate => "up-to-date",
            Decision::Update { .. } => "update",
            Decision::Wait { .. } => "wait",
        }
    }
}

#[cfg(test)]
mod given_up_tests;
#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "slot_tests.rs"]
mod slot_tests;
